delete from unsent_requests
where job_name = $job_name
