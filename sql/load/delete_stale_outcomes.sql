-- outcomes of batches the job's ledger no longer knows (the job was restarted): the warehouse
-- mirrors the job's current ledger, so a restarted job never counts its old run twice
delete from outcomes
where
    job_name = $job_name
    and not list_contains($batch_ids, batch_id)
