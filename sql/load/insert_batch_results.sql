insert into results by name
select * replace (
    $batch_id as batch_id,
    $job_name as job_name
)
from read_parquet($path)
