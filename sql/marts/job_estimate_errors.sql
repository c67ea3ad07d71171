-- grain: one row per job and kind of estimate (key: job_name, estimate)
-- Each estimate of job_estimates next to what the job really cost
-- (job_costs.cost_usd: billed usage of every batch, retries included, and of
-- anything sent in real time at full price) and how far off it was:
--   error_usd    expected_usd - actual_usd (positive: the estimate was high)
--   error_rate   error_usd / actual_usd
--   within_range actual_usd between low_usd and high_usd
--   finished     no row of the job is pending (row_outcomes): actual_usd is
--                final; before that it is what was billed so far
create or replace view job_estimate_errors as

with

estimates as (
    select
        job_name,
        estimate,
        low_usd,
        expected_usd,
        high_usd,
        sample_rows,
        made_at
    from job_estimates
),

costs as (
    select
        job_name,
        cost_usd
    from job_costs
),

pending as (
    select
        job_name,
        count(*) filter (where final_state = 'pending') as pending_rows
    from row_outcomes
    group by job_name
)

select
    estimates.job_name,
    estimates.estimate,
    estimates.sample_rows,
    estimates.made_at,
    estimates.low_usd,
    estimates.expected_usd,
    estimates.high_usd,
    costs.cost_usd as actual_usd,
    coalesce(pending.pending_rows, 0) = 0 as finished,
    (estimates.expected_usd - costs.cost_usd)::decimal(24, 12) as error_usd,
    (
        (estimates.expected_usd - costs.cost_usd)
        / nullif(costs.cost_usd, 0)
    )::double as error_rate,
    costs.cost_usd
    between estimates.low_usd and estimates.high_usd as within_range
from estimates
left join costs
    on estimates.job_name = costs.job_name
left join pending
    on estimates.job_name = pending.job_name
