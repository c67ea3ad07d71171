-- how many batches a job sent, over how many attempts
select count(*) as n_batches, coalesce(max(attempt), 0) as attempts
from batches
where job_name = $job_name
