-- a rows file with a line per row and request (kind.request_keys): each row once,
-- from its first request's line; gold when the file has it
insert into job_rows by name
select
    $job_name as job_name,
    columns(lambda c: c in ('row_id', 'row_number', 'gold'))
from read_parquet($path)
where request = $request
