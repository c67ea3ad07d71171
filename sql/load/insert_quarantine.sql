insert into quarantine by name
select
    $job_name as job_name,
    row_number,
    row_id,
    reason
from read_parquet($path)
