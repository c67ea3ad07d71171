-- grain: one row per model per price change per price band
-- (key: model, effective_from, prompt_tokens_over)
-- prices are standard USD per million tokens; batch = price x batch_discount.
-- A model's price list on a day is every band of its latest effective_from on
-- or before that day; a request is billed at the band with the largest
-- prompt_tokens_over below its prompt tokens (input + cache reads + writes).
-- A null price is not published: requests that need it are unpriced.
-- Replaced on every schema refresh (it is reloaded from halfrate/prices.csv).
create or replace table prices (
    model varchar not null,
    effective_from date not null,
    prompt_tokens_over bigint not null,
    input decimal(12, 6) not null,
    output decimal(12, 6) not null,
    cache_write_5m decimal(12, 6),
    cache_write_1h decimal(12, 6),
    cache_read decimal(12, 6),
    batch_discount decimal(4, 3) not null,
    source varchar not null,
    primary key (model, effective_from, prompt_tokens_over)
);
