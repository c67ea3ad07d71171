-- the columns a typed output table of this schema has (halfrate/typed_table.py
-- puts in the structure literal), to compare with the table that exists
select
    column_name,
    column_type
from (
    describe
    select
        ''::varchar as job_name,
        ''::varchar as row_id,
        0::utinyint as attempt,
        unnest(json_transform('{}', 'typed_structure'))
)
