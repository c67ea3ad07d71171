-- the retry outcome of every result in parsed_results, staged for the retry
-- plan (results/<batch_id>.outcomes.parquet: it never reads the warehouse)
copy (
    select
        custom_id,
        outcome
    from parsed_results
) to $out (format parquet)
