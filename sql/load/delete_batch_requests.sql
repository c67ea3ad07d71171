delete from requests
where batch_id = $batch_id
