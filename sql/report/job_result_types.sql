-- one row per result type across every batch of a job (all attempts)
select result_type, count(*) as n_results
from results
where job_name = $job_name
group by result_type
order by n_results desc
