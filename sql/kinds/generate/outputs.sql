-- a generate job's outputs (without a schema): every generated text, truncated
-- ones included (flagged), with its stop reason and output tokens
copy (
    select
        generations.row_id,
        generations.text,
        generations.truncated,
        generations.stop_reason,
        generations.output_tokens
    from generations
    inner join outcomes
        on
            generations.job_name = outcomes.job_name
            and generations.row_id = outcomes.row_id
            and generations.custom_id = outcomes.custom_id
    where
        generations.job_name = $job_name
        and outcomes.outcome in ('succeeded', 'truncated')
    order by generations.row_id
) to $out (format parquet)
