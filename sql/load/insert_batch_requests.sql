insert into requests by name
select
    $batch_id as batch_id,
    custom_id,
    $job_name as job_name,
    row_id,
    attempt
from read_parquet($path)
