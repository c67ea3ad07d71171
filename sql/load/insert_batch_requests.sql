-- the batch's request index (custom_id, row_id, attempt, and request when the
-- kind sends several requests per row; by name, so request defaults to '')
insert into requests by name
select
    $batch_id as batch_id,
    $job_name as job_name,
    *
from read_parquet($path)
