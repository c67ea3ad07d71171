-- the accuracy of each gold field of one extract job, for the summary
select
    field,
    rows,
    correct,
    accuracy
from extract_accuracy
where job_name = $job_name
order by field
