delete from lost_calls
where job_name = $job_name
