-- the latest result of each row this batch answered, when it succeeded (from
-- outcomes, refreshed just before): its text, stop reason and tokens
insert into generations by name

with

batch_rows as (
    select distinct row_id
    from requests
    where batch_id = $batch_id
),

outcomes as (
    select
        job_name,
        row_id,
        custom_id,
        batch_id,
        attempt,
        outcome
    from outcomes
    where job_name = $job_name and result_type = 'succeeded'
),

results as (
    select
        batch_id,
        custom_id,
        text,
        stop_reason,
        input_tokens,
        output_tokens,
        cache_read_input_tokens,
        cache_creation_input_tokens
    from results
    where job_name = $job_name
),

final as (
    select
        outcomes.job_name,
        outcomes.row_id,
        outcomes.custom_id,
        outcomes.batch_id,
        outcomes.attempt,
        outcomes.outcome,
        results.text,
        results.stop_reason,
        coalesce(
            results.stop_reason in ('max_tokens', 'model_context_window_exceeded'),
            false
        ) as truncated,
        results.input_tokens,
        results.output_tokens,
        results.cache_read_input_tokens,
        results.cache_creation_input_tokens
    from outcomes
    semi join batch_rows
        on outcomes.row_id = batch_rows.row_id
    inner join results
        on
            outcomes.batch_id = results.batch_id
            and outcomes.custom_id = results.custom_id
)

select * from final
