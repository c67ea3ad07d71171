insert into lost_calls (batch_id, custom_id, job_name, lost_calls)
values ($batch_id, $custom_id, $job_name, $lost_calls)
