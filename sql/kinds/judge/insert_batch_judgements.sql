-- the judgements of the rows this batch answered whose every request has a
-- valid output (outcomes is already refreshed for them): one row per criterion
insert into judgements by name

with

affected_rows as (
    select distinct row_id
    from requests
    where batch_id = $batch_id
),

jobs as (
    select
        job_name,
        len(coalesce(request_keys, [''])) as n_requests
    from jobs
    where job_name = $job_name
),

outcomes as (
    select
        job_name,
        row_id,
        request,
        batch_id,
        output_valid,
        output::json as output
    from outcomes
    where job_name = $job_name
),

-- one row per judged row: the output of its only (or 'ab') request, and of its
-- 'ba' request in pairwise mode
complete_rows as (
    select
        outcomes.row_id,
        max(outcomes.batch_id) as batch_id,
        any_value(outcomes.output) filter (where outcomes.request <> 'ba') as output,
        any_value(outcomes.output) filter (where outcomes.request = 'ba') as output_ba
    from outcomes
    inner join affected_rows
        on outcomes.row_id = affected_rows.row_id
    cross join jobs
    group by outcomes.row_id
    having count(*) filter (where outcomes.output_valid) = any_value(jobs.n_requests)
),

criteria as (
    select
        complete_rows.row_id,
        complete_rows.batch_id,
        keys.criterion,
        complete_rows.output -> keys.criterion as judgement,
        complete_rows.output_ba -> keys.criterion as judgement_ba
    from complete_rows, unnest(json_keys(complete_rows.output)) as keys (criterion)
),

-- pairwise: A and B named in each order, back in terms of the compared columns
positions as (
    select
        *,
        case judgement ->> 'winner'
            when 'A' then 'a' when 'B' then 'b' when 'tie' then 'tie'
        end as winner_ab,
        case judgement_ba ->> 'winner'
            when 'A' then 'b' when 'B' then 'a' when 'tie' then 'tie'
        end as winner_ba
    from criteria
),

final as (
    select
        $job_name as job_name,
        row_id,
        criterion,
        (judgement ->> 'score')::integer as score,
        judgement ->> 'verdict' as verdict,
        case
            when winner_ab is null then null
            when winner_ab = winner_ba then winner_ab
            else 'inconsistent'
        end as winner,
        winner_ab,
        winner_ba,
        judgement ->> 'rationale' as rationale,
        judgement_ba ->> 'rationale' as rationale_ba,
        batch_id
    from positions
)

select * from final
