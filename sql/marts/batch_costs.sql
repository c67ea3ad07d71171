-- grain: one row per batch (key: batch_id): billed usage and cost.
-- Only succeeded requests are billed, as the API does (errored, canceled and
-- expired ones are free). Each request is priced with the prices row of the
-- response's model in effect on the batch's created_at date (UTC; today if
-- unknown).
-- realtime_cost_usd: the usage at standard prices (USD per million tokens);
-- batch_cost_usd: the same times the batch discount (0.5);
-- savings_usd: the difference.
-- unpriced_requests: billed requests with no price (model not in the table, or
-- a 1h cache write without a 1h price); when > 0 the cost columns are null,
-- never understated.
create or replace view batch_costs as

with

batches as (
    select
        batch_id,
        job_name,
        attempt,
        purpose,
        coalesce(created_at, current_date)::date as priced_on
    from batches
),

results as (
    select
        batch_id,
        model,
        input_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        cache_read_input_tokens,
        output_tokens
    from results
    where result_type = 'succeeded'
),

prices as (
    select
        model,
        effective_from,
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
        batches.priced_on
    from results
    inner join batches
        on results.batch_id = batches.batch_id
),

priced as (
    select
        billed.*,
        prices.input as input_price,
        prices.output as output_price,
        prices.cache_write_5m as cache_write_5m_price,
        prices.cache_write_1h as cache_write_1h_price,
        prices.cache_read as cache_read_price,
        prices.batch_discount
    from billed
    asof left join prices
        on
            billed.model = prices.model
            and billed.priced_on >= prices.effective_from
),

request_costs as (
    select
        batch_id,
        input_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        cache_read_input_tokens,
        output_tokens,
        (
            input_tokens * input_price
            + cache_write_5m_tokens * cache_write_5m_price
            + if(
                cache_write_1h_tokens = 0,
                0,
                cache_write_1h_tokens * cache_write_1h_price
            )
            + cache_read_input_tokens * cache_read_price
            + output_tokens * output_price
        ) / 1e6 as realtime_cost_usd,
        batch_discount
    from priced
),

batch_usage as (
    select
        batch_id,
        count(*) as billed_requests,
        count(*) filter (where realtime_cost_usd is null) as unpriced_requests,
        sum(input_tokens) as input_tokens,
        sum(cache_write_5m_tokens) as cache_write_5m_tokens,
        sum(cache_write_1h_tokens) as cache_write_1h_tokens,
        sum(cache_read_input_tokens) as cache_read_tokens,
        sum(output_tokens) as output_tokens,
        sum(realtime_cost_usd * batch_discount) as batch_cost_usd,
        sum(realtime_cost_usd) as realtime_cost_usd
    from request_costs
    group by batch_id
),

final as (
    select
        batches.batch_id,
        batches.job_name,
        batches.attempt,
        batches.purpose,
        batches.priced_on,
        coalesce(batch_usage.billed_requests, 0) as billed_requests,
        coalesce(batch_usage.unpriced_requests, 0) as unpriced_requests,
        coalesce(batch_usage.input_tokens, 0) as input_tokens,
        coalesce(batch_usage.cache_write_5m_tokens, 0) as cache_write_5m_tokens,
        coalesce(batch_usage.cache_write_1h_tokens, 0) as cache_write_1h_tokens,
        coalesce(batch_usage.cache_read_tokens, 0) as cache_read_tokens,
        coalesce(batch_usage.output_tokens, 0) as output_tokens,
        case
            when coalesce(batch_usage.unpriced_requests, 0) = 0
                then coalesce(batch_usage.batch_cost_usd, 0)
        end as batch_cost_usd,
        case
            when coalesce(batch_usage.unpriced_requests, 0) = 0
                then coalesce(batch_usage.realtime_cost_usd, 0)
        end as realtime_cost_usd
    from batches
    left join batch_usage
        on batches.batch_id = batch_usage.batch_id
)

select
    *,
    realtime_cost_usd - batch_cost_usd as savings_usd
from final
