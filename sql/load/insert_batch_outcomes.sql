-- the latest result of each request of each row this batch answered: highest
-- attempt, an answer before a canceled or expired result of the same attempt (the
-- real-time answer of a request the deadline canceled), a main batch before the
-- cache-priming one, then the most recent batch
insert into outcomes by name

with

affected_rows as (
    select distinct
        job_name,
        row_id
    from requests
    where batch_id = $batch_id
),

requests as (
    select
        batch_id,
        custom_id,
        job_name,
        row_id,
        attempt,
        request
    from requests
),

results as (
    select
        batch_id,
        custom_id,
        result_type,
        outcome,
        text,
        output_valid,
        invalid_reason,
        error_type,
        error_message
    from results
),

batches as (
    select
        batch_id,
        purpose,
        created_at
    from batches
),

answered as (
    select
        requests.job_name,
        requests.row_id,
        requests.custom_id,
        requests.batch_id,
        requests.attempt,
        requests.request,
        batches.purpose,
        batches.created_at,
        results.result_type,
        results.outcome,
        if(results.output_valid, results.text, null) as output,
        results.output_valid,
        results.invalid_reason,
        results.error_type,
        results.error_message
    from requests
    inner join affected_rows
        on
            requests.job_name = affected_rows.job_name
            and requests.row_id = affected_rows.row_id
    inner join results
        on
            requests.batch_id = results.batch_id
            and requests.custom_id = results.custom_id
    left join batches
        on requests.batch_id = batches.batch_id
),

latest as (
    select *
    from answered
    qualify row_number() over (
        partition by job_name, row_id, request
        order by
            attempt desc,
            result_type in ('canceled', 'expired') asc,
            purpose = 'prime' asc nulls last,
            created_at desc nulls last,
            batch_id desc
    ) = 1
),

final as (
    select
        job_name,
        row_id,
        custom_id,
        batch_id,
        attempt,
        result_type,
        outcome,
        output,
        output_valid,
        invalid_reason,
        error_type,
        error_message,
        request
    from latest
)

select * from final
