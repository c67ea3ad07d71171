-- a job's outputs joined to its source rows (row_number, row_id, prompt and the
-- source's own columns), in source order (then by the outputs: judge has a row
-- per criterion); valid rows without an output have nulls
copy (
    select
        source_rows.*,
        outputs.* exclude (row_id)
    from read_parquet($source_rows) as source_rows
    left join read_parquet($outputs) as outputs
        on source_rows.row_id = outputs.row_id
    order by all
) to $out (format json)
