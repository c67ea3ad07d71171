-- generations of batches the job's ledger no longer knows (the job was restarted)
delete from generations
where
    job_name = $job_name
    and not list_contains($batch_ids, batch_id)
