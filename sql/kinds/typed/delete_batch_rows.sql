-- the typed rows of the source rows this batch answered, before they are
-- recomputed (typed_table: the job's output table, put in by halfrate/typed_table.py)
delete from typed_table
where
    job_name = $job_name
    and row_id in (
        select row_id
        from requests
        where batch_id = $batch_id
    )
