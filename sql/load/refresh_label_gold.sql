-- after job_rows are reloaded: labels keep the gold of their row
update labels
set
    gold = job_rows.gold,
    correct = labels.label = job_rows.gold
from job_rows
where
    labels.job_name = $job_name
    and job_rows.job_name = labels.job_name
    and job_rows.row_id = labels.row_id
