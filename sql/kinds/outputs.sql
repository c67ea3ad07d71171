-- a job's outputs (kinds without their own): the validated output of every
-- succeeded row, as text (JSON for kinds with an output schema)
copy (
    select
        row_id,
        output
    from outcomes
    where
        job_name = $job_name
        and output_valid
        and request = ''
    order by row_id
) to $out (format parquet)
