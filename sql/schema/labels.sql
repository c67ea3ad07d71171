-- grain: one row per source row that has a result: its latest attempt (key: job_name, row_id)
-- the key is kept by the loads (delete + insert per batch or job) and checked by tests/sql;
-- no primary-key index, which would make bulk loads and reloads several times slower
create table if not exists labels (
    job_name varchar not null,
    row_id varchar not null,
    custom_id varchar not null,
    batch_id varchar not null,
    attempt utinyint not null,
    result_type varchar not null,
    outcome varchar not null,
    label varchar,
    gold varchar,
    correct boolean,
    output_valid boolean,
    invalid_reason varchar,
    error_type varchar,
    error_message varchar
);
