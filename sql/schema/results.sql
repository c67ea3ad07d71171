-- grain: one row per result line of a batch (key: batch_id, custom_id)
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql;
-- no primary-key index: it makes bulk loads and reloads several times slower
create table if not exists results (
    batch_id varchar not null,
    custom_id varchar not null,
    job_name varchar not null,
    result_type varchar not null,
    message_id varchar,
    model varchar,
    text varchar,
    stop_reason varchar,
    input_tokens bigint,
    output_tokens bigint,
    cache_creation_input_tokens bigint,
    cache_write_5m_tokens bigint,
    cache_write_1h_tokens bigint,
    cache_read_input_tokens bigint,
    service_tier varchar,
    error_type varchar,
    error_message varchar,
    output_valid boolean,
    invalid_reason varchar,
    outcome varchar not null
);
