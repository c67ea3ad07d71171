insert into job_rows by name
select
    $job_name as job_name,
    row_id,
    row_number,
    null as gold
from read_parquet($path)
