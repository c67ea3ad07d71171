-- grain: one row per source row of a generate job with a succeeded result,
-- its latest (key: job_name, row_id); the text as it came back, truncated or
-- not, with its stop reason and tokens (outcomes says whether it is valid)
create table if not exists generations (
    job_name varchar not null,
    row_id varchar not null,
    custom_id varchar not null,
    batch_id varchar not null,
    attempt utinyint not null,
    outcome varchar not null,
    text varchar,
    stop_reason varchar,
    truncated boolean not null,
    input_tokens bigint,
    output_tokens bigint,
    cache_read_input_tokens bigint,
    cache_creation_input_tokens bigint
)
