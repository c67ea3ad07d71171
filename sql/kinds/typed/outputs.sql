-- a record job's outputs: its rows of the typed table, one typed column per
-- property of its schema (typed_table is put in by halfrate/typed_table.py)
copy (
    select * exclude (job_name, attempt)
    from typed_table
    where job_name = $job_name
    order by row_id
) to $out (format parquet)
