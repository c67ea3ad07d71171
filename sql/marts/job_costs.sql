-- grain: one row per job (key: job_name): billed usage and cost of its batches
-- (and real-time pseudo-batches: batch_costs says what each is)
-- Token columns sum the usage of succeeded (billed) requests only.
-- batch_cost_usd: spent on batches (the dated standard prices times
-- batch_discount, 0.5, each request at the price band of its prompt length);
-- realtime_spend_usd: spent in real time (requests sent through the Messages
-- API at full price: `mode: realtime`, or what the job's deadline left);
-- cost_usd: what the job cost, batch_cost_usd + realtime_spend_usd;
-- realtime_cost_usd: what all of it would have cost in real time;
-- savings_usd = realtime_cost_usd - cost_usd. Exact DECIMAL(24,12); null when
-- unpriced_requests > 0.
-- realtime_requests: billed requests sent in real time.
-- possible_duplicate_requests / possible_duplicate_cost_usd: real-time calls
-- whose answer was lost, each possibly charged on top of cost_usd (see
-- batch_costs and lost_calls).
-- long_context_requests: billed requests priced above the lowest band.
-- cache_hit_rate = cache_read_tokens / (input_tokens + cache_write_5m_tokens
--                  + cache_write_1h_tokens + cache_read_tokens)
-- i.e. the share of all prompt (input-side) tokens of billed requests that
-- were read from the cache; null when the job has no billed tokens yet.
create or replace view job_costs as

with

jobs as (
    select
        job_name,
        model
    from jobs
),

batch_costs as (
    select * from batch_costs
),

job_usage as (
    select
        job_name,
        count(*) filter (where mode = 'batch') as batches,
        sum(billed_requests) as billed_requests,
        sum(billed_requests) filter (where mode = 'realtime') as realtime_requests,
        sum(unpriced_requests) as unpriced_requests,
        sum(long_context_requests) as long_context_requests,
        sum(input_tokens) as input_tokens,
        sum(cache_write_5m_tokens) as cache_write_5m_tokens,
        sum(cache_write_1h_tokens) as cache_write_1h_tokens,
        sum(cache_read_tokens) as cache_read_tokens,
        sum(output_tokens) as output_tokens,
        sum(batch_cost_usd) as batch_cost_usd,
        sum(realtime_spend_usd) as realtime_spend_usd,
        sum(cost_usd) as cost_usd,
        sum(realtime_cost_usd) as realtime_cost_usd,
        sum(possible_duplicate_requests) as possible_duplicate_requests,
        sum(possible_duplicate_cost_usd) as possible_duplicate_cost_usd
    from batch_costs
    group by job_name
),

final as (
    select
        jobs.job_name,
        jobs.model,
        coalesce(job_usage.batches, 0) as batches,
        coalesce(job_usage.billed_requests, 0)::bigint as billed_requests,
        coalesce(job_usage.realtime_requests, 0)::bigint as realtime_requests,
        coalesce(job_usage.unpriced_requests, 0)::bigint as unpriced_requests,
        coalesce(job_usage.long_context_requests, 0)::bigint
            as long_context_requests,
        coalesce(job_usage.input_tokens, 0)::bigint as input_tokens,
        coalesce(job_usage.cache_write_5m_tokens, 0)::bigint
            as cache_write_5m_tokens,
        coalesce(job_usage.cache_write_1h_tokens, 0)::bigint
            as cache_write_1h_tokens,
        coalesce(job_usage.cache_read_tokens, 0)::bigint as cache_read_tokens,
        coalesce(job_usage.output_tokens, 0)::bigint as output_tokens,
        case
            when coalesce(job_usage.unpriced_requests, 0) = 0
                then coalesce(job_usage.batch_cost_usd, 0)::decimal(24, 12)
        end as batch_cost_usd,
        case
            when coalesce(job_usage.unpriced_requests, 0) = 0
                then coalesce(job_usage.realtime_spend_usd, 0)::decimal(24, 12)
        end as realtime_spend_usd,
        case
            when coalesce(job_usage.unpriced_requests, 0) = 0
                then coalesce(job_usage.cost_usd, 0)::decimal(24, 12)
        end as cost_usd,
        case
            when coalesce(job_usage.unpriced_requests, 0) = 0
                then coalesce(job_usage.realtime_cost_usd, 0)::decimal(24, 12)
        end as realtime_cost_usd,
        coalesce(job_usage.possible_duplicate_requests, 0)::bigint
            as possible_duplicate_requests,
        case
            when coalesce(job_usage.unpriced_requests, 0) = 0
                then coalesce(job_usage.possible_duplicate_cost_usd, 0)::decimal(24, 12)
        end as possible_duplicate_cost_usd
    from jobs
    left join job_usage
        on jobs.job_name = job_usage.job_name
)

select
    *,
    (realtime_cost_usd - cost_usd)::decimal(24, 12) as savings_usd,
    cache_read_tokens / nullif(
        input_tokens
        + cache_write_5m_tokens
        + cache_write_1h_tokens
        + cache_read_tokens,
        0
    ) as cache_hit_rate
from final
