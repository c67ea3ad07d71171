delete from job_estimates
where job_name = $job_name
