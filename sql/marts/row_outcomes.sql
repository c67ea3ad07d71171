-- grain: one row per input row, quarantined too (key: job_name, row_number)
-- final_state comes from the latest attempt's outcome (the labels table):
--   succeeded       valid output
--   invalid_output  output failed validation at the last allowed attempt
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

labels as (
    select
        job_name,
        row_id,
        custom_id,
        batch_id,
        attempt,
        result_type,
        outcome,
        label,
        invalid_reason,
        error_type,
        error_message
    from labels
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
            when unsent.attempt > coalesce(labels.attempt, 0) then 'failed'
            when labels.outcome is null then 'pending'
            when labels.outcome in ('succeeded', 'failed') then labels.outcome
            when
                labels.result_type = 'canceled'
                and user_cancels.batch_id is not null
                then 'canceled'
            when labels.attempt < jobs.max_attempts then 'pending'
            when labels.outcome = 'invalid_output' then 'invalid_output'
            else 'exhausted'
        end as final_state,
        case
            when unsent.attempt > coalesce(labels.attempt, 0) then unsent.reason
            when
                labels.result_type = 'canceled'
                and user_cancels.batch_id is not null
                then 'canceled by the user'
            when labels.outcome = 'invalid_output' then labels.invalid_reason
            when labels.outcome in ('failed', 'retriable')
                then coalesce(
                    labels.error_type || ': ' || labels.error_message,
                    labels.error_type,
                    labels.result_type
                )
        end as reason,
        coalesce(labels.attempt, 0) as attempts,
        jobs.max_attempts,
        labels.custom_id,
        labels.label,
        job_rows.gold
    from job_rows
    inner join jobs
        on job_rows.job_name = jobs.job_name
    left join labels
        on
            job_rows.job_name = labels.job_name
            and job_rows.row_id = labels.row_id
    left join user_cancels
        on labels.batch_id = user_cancels.batch_id
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
