insert into user_cancels (batch_id, job_name, canceled_at)
values ($batch_id, $job_name, $canceled_at)
