-- whether the warehouse predates the outcomes table: `labels` is then a table
select count(*) > 0 as labels_is_a_table
from information_schema.tables
where
    table_schema = 'main'
    and table_name = 'labels'
    and table_type = 'BASE TABLE'
