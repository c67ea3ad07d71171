-- the rows of a job that did not succeed, first by source order
select row_number, row_id, final_state, reason, attempts
from row_outcomes
where job_name = $job_name and final_state <> 'succeeded'
order by row_number nulls last, row_id
limit $limit
