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
create or replace view row_outcomes as

with

jobs as (
    select
        job_name,
        kind,
        max_attempts
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
        max(attempt) as attempt,
        any_value(reason) as reason
    from unsent_requests
    group by job_name, row_id
),

valid_rows as (
    select
        job_rows.job_name,
        job_rows.row_number,
        job_rows.row_id,
        case
            when unsent.attempt > coalesce(outcomes.attempt, 0) then 'failed'
            when outcomes.outcome is null then 'pending'
            when outcomes.outcome in ('succeeded', 'failed', 'truncated')
                then outcomes.outcome
            when
                outcomes.result_type = 'canceled'
                and user_cancels.batch_id is not null
                then 'canceled'
            when outcomes.attempt < jobs.max_attempts then 'pending'
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
        jobs.max_attempts,
        outcomes.custom_id,
        outcomes.output,
        -- kept for queries written when every job was a label job
        if(jobs.kind = 'label', outcomes.output ->> '$.label', null) as label,
        job_rows.gold
    from job_rows
    inner join jobs
        on job_rows.job_name = jobs.job_name
    left join outcomes
        on
            job_rows.job_name = outcomes.job_name
            and job_rows.row_id = outcomes.row_id
    left join user_cancels
        on outcomes.batch_id = user_cancels.batch_id
    left join unsent
        on
            job_rows.job_name = unsent.job_name
            and job_rows.row_id = unsent.row_id
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
