delete from results
where batch_id = $batch_id
