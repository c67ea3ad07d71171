-- whether a job another job reads (source: job:<name>) is in the warehouse and
-- finished: its rows still pending (a few ids, in source order) and the
-- batches its outputs come from
select
    (
        select count(*)
        from jobs
        where job_name = $job_name
    ) > 0 as known,
    (
        select count(*)
        from row_outcomes
        where job_name = $job_name and final_state = 'pending'
    ) as pending,
    (
        select list(row_id order by row_number)[1:5]
        from row_outcomes
        where job_name = $job_name and final_state = 'pending'
    ) as pending_examples,
    (
        select coalesce(list(batch_id order by batch_id), [])
        from batches
        where job_name = $job_name
    ) as batch_ids
