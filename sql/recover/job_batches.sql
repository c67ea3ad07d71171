-- the batches a job sent (the warehouse's record of them), oldest first
select
    batch_id,
    attempt,
    purpose,
    request_file,
    n_requests,
    body_bytes,
    created_at
from batches
where
    job_name = $job_name
    and ($since is null or created_at >= $since)
order by attempt asc, created_at asc
