insert into unsent_requests by name
select
    $job_name as job_name,
    custom_id,
    row_id,
    attempt,
    $request_file as request_file,
    $reason as reason
from read_parquet($path)
