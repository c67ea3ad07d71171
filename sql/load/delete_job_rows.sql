delete from job_rows
where job_name = $job_name
