-- how many of a job's rows were sent in real time (they missed the batch, or the
-- job's mode is realtime)
select count(distinct requests.row_id) as realtime_rows
from requests
inner join batches
    on requests.batch_id = batches.batch_id
where requests.job_name = $job_name and batches.mode = 'realtime'
