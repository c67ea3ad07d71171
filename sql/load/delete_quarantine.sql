delete from quarantine
where job_name = $job_name
