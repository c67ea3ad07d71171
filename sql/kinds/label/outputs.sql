-- a label job's outputs: the label of every labelled row, and whether it
-- matches the row's gold label (null without one)
copy (
    select
        row_id,
        label,
        correct
    from labels
    where
        job_name = $job_name
        and label is not null
    order by row_id
) to $out (format parquet)
