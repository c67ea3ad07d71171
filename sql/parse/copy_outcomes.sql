-- each result's type, retry outcome and usage in parsed_results, staged beside the
-- raw file (results/<batch_id>.outcomes.parquet): the retry plan, the deadline's
-- remainders and the pilot's measurement read it, never the warehouse
copy (
    select
        custom_id,
        result_type,
        outcome,
        input_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        cache_read_input_tokens,
        output_tokens
    from parsed_results
) to $out (format parquet)
