-- grain: one row per model per price change (key: model, effective_from)
-- prices are standard USD per million tokens; batch = price x batch_discount
create table if not exists prices (
    model varchar not null,
    effective_from date not null,
    input double not null,
    output double not null,
    cache_write_5m double not null,
    cache_write_1h double,
    cache_read double not null,
    batch_discount double not null,
    source varchar not null,
    primary key (model, effective_from)
);
