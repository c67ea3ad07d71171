-- the rows an export writes (sql/export/<format>.sql joins the same files)
select count(*) as n_rows
from read_parquet($source_rows) as source_rows
left join read_parquet($outputs) as outputs
    on source_rows.row_id = outputs.row_id
