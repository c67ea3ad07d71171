-- the settings a job ran with, as the warehouse recorded them
select config
from jobs
where job_name = $job_name
