-- how many batches a job sent (real-time pseudo-batches are not batches), over
-- how many attempts
select
    count(*) filter (where coalesce(mode, 'batch') = 'batch') as n_batches,
    coalesce(max(attempt), 0) as attempts
from batches
where job_name = $job_name
