-- grain: one row per answered source row of a label job, latest result
-- (key: job_name, row_id); the label read from the validated output, and
-- whether it matches the row's gold label
create or replace view labels as

with

jobs as (
    select job_name
    from jobs
    where kind = 'label'
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
        output_valid,
        invalid_reason,
        error_type,
        error_message
    from outcomes
),

job_rows as (
    select
        job_name,
        row_id,
        gold
    from job_rows
),

labelled as (
    select
        outcomes.*,
        if(outcomes.output_valid, outcomes.output ->> '$.label', null) as label
    from outcomes
    semi join jobs
        on outcomes.job_name = jobs.job_name
),

final as (
    select
        labelled.job_name,
        labelled.row_id,
        labelled.custom_id,
        labelled.batch_id,
        labelled.attempt,
        labelled.result_type,
        labelled.outcome,
        labelled.label,
        job_rows.gold,
        labelled.label = job_rows.gold as correct,
        labelled.output_valid,
        labelled.invalid_reason,
        labelled.error_type,
        labelled.error_message
    from labelled
    left join job_rows
        on
            labelled.job_name = job_rows.job_name
            and labelled.row_id = job_rows.row_id
)

select * from final
