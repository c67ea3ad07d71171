delete from user_cancels
where job_name = $job_name
