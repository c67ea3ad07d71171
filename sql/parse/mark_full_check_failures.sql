-- a parsed results file with the outputs that failed the full-schema
-- validation (the registered full_check_failures: custom_id, reason) marked
-- invalid_output, to be asked again; every other row as it was
copy (
    select
        parsed.* replace (
            if(failures.custom_id is null, parsed.output_valid, false)
                as output_valid,
            coalesce(failures.reason, parsed.invalid_reason) as invalid_reason,
            if(failures.custom_id is null, parsed.outcome, 'invalid_output')
                as outcome
        )
    from read_parquet($path) as parsed
    left join full_check_failures as failures
        on parsed.custom_id = failures.custom_id
) to $out (format parquet, compression snappy, row_group_size 32768)
