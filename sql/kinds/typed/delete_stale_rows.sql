-- a job's typed rows that outcomes no longer holds as valid (its batches were
-- forgotten: the job was restarted); typed_table is put in by halfrate/typed_table.py
delete from typed_table
where
    job_name = $job_name
    and row_id not in (
        select row_id
        from outcomes
        where job_name = $job_name and output_valid
    )
