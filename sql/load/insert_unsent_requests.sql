-- the requests of a file the API refused even alone (request defaults to '')
insert into unsent_requests by name
select
    $job_name as job_name,
    $request_file as request_file,
    $reason as reason,
    *
from read_parquet($path)
