-- grain: one row per batch (key: batch_id): billed usage and cost.
-- A batch is a batch of the API (mode 'batch') or a real-time pseudo-batch
-- (mode 'realtime': requests halfrate sent through the Messages API at full
-- price, for `mode: realtime` jobs and what a job's deadline left).
-- Only succeeded requests are billed, as the API does (errored, canceled and
-- expired ones are free). Each request is priced with the price list of the
-- response's model in effect on the batch's created_at date (UTC; today if
-- unknown), at the band its prompt falls in: prompt_tokens = input + cache
-- writes + cache reads; the band with the largest prompt_tokens_over below it
-- prices every token of the request (e.g. claude-haiku-5-5 over 100,000).
-- Money is DECIMAL(24,12), exact: prices have at most 4 decimals and the
-- discount at most 2 (halfrate/pricing.py checks prices.csv).
-- realtime_cost_usd: the usage at standard prices (USD per million tokens),
-- what the same work costs in real time;
-- batch_cost_usd: what a batch cost: its usage times the batch discount (0.5);
-- 0 for a real-time pseudo-batch;
-- realtime_spend_usd: what a real-time pseudo-batch cost: its usage at
-- standard prices; 0 for a batch;
-- cost_usd: what was paid: batch_cost_usd + realtime_spend_usd;
-- savings_usd: realtime_cost_usd - cost_usd.
-- possible_duplicate_requests: real-time calls whose answer was lost (each may
-- have been charged; lost_calls); possible_duplicate_cost_usd prices each at
-- what its request's kept answer cost (a request never answered is counted,
-- not priced). Not included in cost_usd.
-- long_context_requests: billed requests priced above the lowest band.
-- unpriced_requests: billed requests with no price (model not in the table,
-- or a token kind whose price the band does not publish, such as a 1h cache
-- write over 100,000 tokens on claude-haiku-5-5); when > 0 the cost columns
-- are null, never understated.
create or replace view batch_costs as

with

batches as (
    select
        batch_id,
        job_name,
        attempt,
        purpose,
        coalesce(mode, 'batch') as mode,
        coalesce(created_at, current_date)::date as priced_on
    from batches
),

results as (
    select
        batch_id,
        custom_id,
        model,
        input_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        cache_read_input_tokens,
        output_tokens,
        coalesce(input_tokens, 0)
        + coalesce(cache_write_5m_tokens, 0)
        + coalesce(cache_write_1h_tokens, 0)
        + coalesce(cache_read_input_tokens, 0) as prompt_tokens
    from results
    where result_type = 'succeeded'
),

price_lists as (
    select distinct
        model,
        effective_from
    from prices
),

prices as (
    select
        model,
        effective_from,
        prompt_tokens_over,
        input,
        output,
        cache_write_5m,
        cache_write_1h,
        cache_read,
        batch_discount
    from prices
),

billed as (
    select
        results.*,
        batches.mode,
        batches.priced_on
    from results
    inner join batches
        on results.batch_id = batches.batch_id
),

listed as (
    select
        billed.*,
        price_lists.effective_from as price_list_from
    from billed
    asof left join price_lists
        on
            billed.model = price_lists.model
            and billed.priced_on >= price_lists.effective_from
),

priced as (
    select
        listed.*,
        prices.prompt_tokens_over as band_over,
        prices.input as input_price,
        prices.output as output_price,
        prices.cache_write_5m as cache_write_5m_price,
        prices.cache_write_1h as cache_write_1h_price,
        prices.cache_read as cache_read_price,
        prices.batch_discount
    from listed
    asof left join prices
        on
            listed.model = prices.model
            and listed.price_list_from = prices.effective_from
            and listed.prompt_tokens > prices.prompt_tokens_over
),

request_costs as (
    -- realtime_micro_usd: USD x 1e6 at standard prices, exact (DECIMAL);
    -- a token kind with tokens but no price makes it null (unpriced)
    select
        batch_id,
        custom_id,
        input_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        cache_read_input_tokens,
        output_tokens,
        band_over > 0 as long_context,
        -- a real-time call pays the standard price
        if(mode = 'batch', batch_discount, 1) as price_factor,
        input_tokens * input_price
        + if(cache_write_5m_tokens = 0, 0, cache_write_5m_tokens * cache_write_5m_price)
        + if(cache_write_1h_tokens = 0, 0, cache_write_1h_tokens * cache_write_1h_price)
        + if(cache_read_input_tokens = 0, 0, cache_read_input_tokens * cache_read_price)
        + output_tokens * output_price as realtime_micro_usd
    from priced
),

batch_usage as (
    select
        batch_id,
        count(*) as billed_requests,
        count(*) filter (where realtime_micro_usd is null) as unpriced_requests,
        count(*) filter (where long_context) as long_context_requests,
        sum(input_tokens) as input_tokens,
        sum(cache_write_5m_tokens) as cache_write_5m_tokens,
        sum(cache_write_1h_tokens) as cache_write_1h_tokens,
        sum(cache_read_input_tokens) as cache_read_tokens,
        sum(output_tokens) as output_tokens,
        sum(realtime_micro_usd * price_factor) * 0.000001 as cost_usd,
        sum(realtime_micro_usd) * 0.000001 as realtime_cost_usd
    from request_costs
    group by batch_id
),

lost_calls as (
    select
        batch_id,
        custom_id,
        lost_calls
    from lost_calls
),

duplicates as (
    select
        lost_calls.batch_id,
        sum(lost_calls.lost_calls) as possible_duplicate_requests,
        sum(lost_calls.lost_calls * request_costs.realtime_micro_usd)
        * 0.000001 as possible_duplicate_cost_usd
    from lost_calls
    left join request_costs
        on
            lost_calls.batch_id = request_costs.batch_id
            and lost_calls.custom_id = request_costs.custom_id
    group by lost_calls.batch_id
),

final as (
    select
        batches.batch_id,
        batches.job_name,
        batches.attempt,
        batches.purpose,
        batches.mode,
        batches.priced_on,
        coalesce(batch_usage.billed_requests, 0) as billed_requests,
        coalesce(batch_usage.unpriced_requests, 0) as unpriced_requests,
        coalesce(batch_usage.long_context_requests, 0) as long_context_requests,
        coalesce(batch_usage.input_tokens, 0) as input_tokens,
        coalesce(batch_usage.cache_write_5m_tokens, 0) as cache_write_5m_tokens,
        coalesce(batch_usage.cache_write_1h_tokens, 0) as cache_write_1h_tokens,
        coalesce(batch_usage.cache_read_tokens, 0) as cache_read_tokens,
        coalesce(batch_usage.output_tokens, 0) as output_tokens,
        case
            when coalesce(batch_usage.unpriced_requests, 0) = 0
                then coalesce(batch_usage.cost_usd, 0)::decimal(24, 12)
        end as cost_usd,
        case
            when coalesce(batch_usage.unpriced_requests, 0) = 0
                then coalesce(batch_usage.realtime_cost_usd, 0)::decimal(24, 12)
        end as realtime_cost_usd,
        coalesce(duplicates.possible_duplicate_requests, 0)::bigint
            as possible_duplicate_requests,
        case
            when coalesce(batch_usage.unpriced_requests, 0) = 0
                then coalesce(duplicates.possible_duplicate_cost_usd, 0)::decimal(24, 12)
        end as possible_duplicate_cost_usd
    from batches
    left join batch_usage
        on batches.batch_id = batch_usage.batch_id
    left join duplicates
        on batches.batch_id = duplicates.batch_id
)

select
    batch_id,
    job_name,
    attempt,
    purpose,
    mode,
    priced_on,
    billed_requests,
    unpriced_requests,
    long_context_requests,
    input_tokens,
    cache_write_5m_tokens,
    cache_write_1h_tokens,
    cache_read_tokens,
    output_tokens,
    if(mode = 'batch', cost_usd, 0)::decimal(24, 12) as batch_cost_usd,
    if(mode = 'batch', 0, cost_usd)::decimal(24, 12) as realtime_spend_usd,
    cost_usd,
    realtime_cost_usd,
    (realtime_cost_usd - cost_usd)::decimal(24, 12) as savings_usd,
    possible_duplicate_requests,
    possible_duplicate_cost_usd
from final
