-- one row per final state of a job's input rows
select final_state, count(*) as n_rows
from row_outcomes
where job_name = $job_name
group by final_state
order by n_rows desc
