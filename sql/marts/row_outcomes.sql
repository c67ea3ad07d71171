-- grain: one row per input row, quarantined too (key: job_name, row_number)
-- final_state comes from the latest attempt's outcome (the outcomes table):
--   succeeded       valid output
--   invalid_output  output failed validation at the last allowed attempt
--   truncated       output cut at max_tokens, kept as it is (generate, unless
--                   retry_truncated: then it is an invalid_output)
--   failed          invalid_request_error: final, its message is the reason
--   exhausted       expired, canceled or retriable error at the last attempt
--   canceled        canceled by the user (`halfrate cancel`, the Prefect UI)
--   quarantined     rejected at extract, never sent
--   pending         not sent or not loaded yet, or a retry is still allowed
--                   (retriable or invalid_output with attempts < max_attempts)
-- A kind that sends several requests per row (jobs.request_keys, e.g. judge's
-- pairwise 'ab' and 'ba'): each request gets a state as above, and the row's is
-- succeeded when all of them succeeded, else the first of pending, canceled,
-- failed, invalid_output, truncated, exhausted among them, its reason prefixed with the
-- request key ('ba: ...'); custom_id and output are that request's (the first
-- request's when all succeeded).
create or replace view row_outcomes as

with

jobs as (
    select
        job_name,
        kind,
        max_attempts,
        coalesce(request_keys, ['']) as request_keys
    from jobs
),

job_rows as (
    select
        job_name,
        row_number,
        row_id,
        gold
    from job_rows
),

quarantine as (
    select
        job_name,
        row_number,
        row_id,
        reason
    from quarantine
),

outcomes as (
    select
        job_name,
        row_id,
        request,
        custom_id,
        batch_id,
        attempt,
        result_type,
        outcome,
        output,
        invalid_reason,
        error_type,
        error_message
    from outcomes
),

user_cancels as (
    select batch_id from user_cancels
),

unsent as (
    select
        job_name,
        row_id,
        request,
        max(attempt) as attempt,
        any_value(reason) as reason
    from unsent_requests
    group by job_name, row_id, request
),

-- every request of every valid row: one per row, or one per request key
expected_requests as (
    select
        job_rows.job_name,
        job_rows.row_number,
        job_rows.row_id,
        job_rows.gold,
        jobs.kind,
        jobs.max_attempts,
        len(jobs.request_keys) as n_requests,
        unnest(jobs.request_keys) as request
    from job_rows
    inner join jobs
        on job_rows.job_name = jobs.job_name
),

request_states as (
    select
        expected_requests.job_name,
        expected_requests.row_number,
        expected_requests.row_id,
        expected_requests.request,
        expected_requests.n_requests,
        expected_requests.kind,
        expected_requests.gold,
        case
            when unsent.attempt > coalesce(outcomes.attempt, 0) then 'failed'
            when outcomes.outcome is null then 'pending'
            when outcomes.outcome in ('succeeded', 'failed', 'truncated')
                then outcomes.outcome
            when
                outcomes.result_type = 'canceled'
                and user_cancels.batch_id is not null
                then 'canceled'
            when outcomes.attempt < expected_requests.max_attempts then 'pending'
            when outcomes.outcome = 'invalid_output' then 'invalid_output'
            else 'exhausted'
        end as final_state,
        case
            when unsent.attempt > coalesce(outcomes.attempt, 0) then unsent.reason
            when
                outcomes.result_type = 'canceled'
                and user_cancels.batch_id is not null
                then 'canceled by the user'
            when outcomes.outcome in ('invalid_output', 'truncated')
                then outcomes.invalid_reason
            when outcomes.outcome in ('failed', 'retriable')
                then coalesce(
                    outcomes.error_type || ': ' || outcomes.error_message,
                    outcomes.error_type,
                    outcomes.result_type
                )
        end as reason,
        coalesce(outcomes.attempt, 0) as attempts,
        expected_requests.max_attempts,
        outcomes.custom_id,
        outcomes.output
    from expected_requests
    left join outcomes
        on
            expected_requests.job_name = outcomes.job_name
            and expected_requests.row_id = outcomes.row_id
            and expected_requests.request = outcomes.request
    left join user_cancels
        on outcomes.batch_id = user_cancels.batch_id
    left join unsent
        on
            expected_requests.job_name = unsent.job_name
            and expected_requests.row_id = unsent.row_id
            and expected_requests.request = unsent.request
),

single_request_rows as (
    select
        job_name,
        row_number,
        row_id,
        final_state,
        reason,
        attempts,
        max_attempts,
        custom_id,
        output,
        kind,
        gold
    from request_states
    where n_requests = 1
),

-- the request that decides the row: the first pending, canceled, failed,
-- invalid_output, truncated, exhausted one, in key order; else the first request
ranked_requests as (
    select
        *,
        case final_state
            when 'pending' then 0
            when 'canceled' then 1
            when 'failed' then 2
            when 'invalid_output' then 3
            when 'truncated' then 4
            when 'exhausted' then 5
            else 6
        end as state_rank
    from request_states
    where n_requests > 1
),

several_request_rows as (
    select
        job_name,
        row_number,
        row_id,
        decisive.final_state,
        decisive.request || ': ' || decisive.reason as reason,
        attempts,
        max_attempts,
        decisive.custom_id,
        decisive.output,
        kind,
        gold
    from (
        select
            job_name,
            row_number,
            row_id,
            arg_min(
                {
                    'final_state': final_state,
                    'reason': reason,
                    'request': request,
                    'custom_id': custom_id,
                    'output': output
                },
                {'rank': state_rank, 'request': request}
            ) as decisive,
            max(attempts) as attempts,
            any_value(max_attempts) as max_attempts,
            any_value(kind) as kind,
            any_value(gold) as gold
        from ranked_requests
        group by job_name, row_number, row_id
    )
),

valid_rows as (
    select
        job_name,
        row_number,
        row_id,
        final_state,
        reason,
        attempts,
        max_attempts,
        custom_id,
        output,
        -- kept for queries written when every job was a label job
        if(kind = 'label', output ->> '$.label', null) as label,
        gold
    from (
        select * from single_request_rows
        union all
        select * from several_request_rows
    )
),

quarantined_rows as (
    select
        quarantine.job_name,
        quarantine.row_number,
        quarantine.row_id,
        'quarantined' as final_state,
        quarantine.reason,
        0 as attempts,
        jobs.max_attempts,
        null as custom_id,
        null as output,
        null as label,
        null as gold
    from quarantine
    inner join jobs
        on quarantine.job_name = jobs.job_name
),

final as (
    select * from valid_rows
    union all by name
    select * from quarantined_rows
)

select * from final
