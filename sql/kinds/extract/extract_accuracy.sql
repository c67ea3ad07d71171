-- grain: one row per extract job and gold field (key: job_name, field); how
-- often a field of the valid records matches the row's expected value (the
-- job's gold_columns, kept in job_rows.gold as one JSON object). Strings are
-- compared trimmed, lowercased, with runs of blanks as one space; values that
-- are both timestamps are compared as instants; null matches null.
create or replace view extract_accuracy as

with

jobs as (
    select job_name
    from jobs
    where kind = 'extract'
),

job_rows as (
    select
        job_name,
        row_id,
        gold
    from job_rows
    where gold is not null
),

outcomes as (
    select
        job_name,
        row_id,
        output
    from outcomes
    where output_valid
),

gold_fields as (
    select
        job_rows.job_name,
        job_rows.row_id,
        job_rows.gold,
        unnest(json_keys(job_rows.gold)) as field
    from job_rows
    semi join jobs
        on job_rows.job_name = jobs.job_name
),

compared as (
    select
        gold_fields.job_name,
        gold_fields.field,
        json_extract_string(gold_fields.gold, '/' || gold_fields.field) as expected,
        json_extract_string(outcomes.output, '/' || gold_fields.field) as actual
    from gold_fields
    inner join outcomes
        on
            gold_fields.job_name = outcomes.job_name
            and gold_fields.row_id = outcomes.row_id
),

scored as (
    select
        job_name,
        field,
        coalesce(
            try_cast(actual as timestamptz) = try_cast(expected as timestamptz),
            lower(trim(regexp_replace(actual, '\s+', ' ', 'g')))
            is not distinct from lower(trim(regexp_replace(expected, '\s+', ' ', 'g')))
        ) as correct
    from compared
),

final as (
    select
        job_name,
        field,
        count(*) as rows,
        count(*) filter (where correct) as correct,
        avg(correct::int) as accuracy
    from scored
    group by job_name, field
)

select * from final
