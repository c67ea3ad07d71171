-- the generations of the rows this batch answered, before they are recomputed
delete from generations
where
    job_name = $job_name
    and row_id in (
        select row_id
        from requests
        where batch_id = $batch_id
    )
