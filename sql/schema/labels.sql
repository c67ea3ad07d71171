-- grain: one row per answered source row, latest result (key: job_name, row_id)
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql;
-- no primary-key index: it makes bulk loads and reloads several times slower
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
