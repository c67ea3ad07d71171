-- grain: one row per request sent, i.e. per custom_id per batch (key: batch_id, custom_id)
-- the key is kept by the loads (delete + insert per batch or job) and checked by tests/sql;
-- no primary-key index, which would make bulk loads and reloads several times slower
create table if not exists requests (
    batch_id varchar not null,
    custom_id varchar not null,
    job_name varchar not null,
    row_id varchar not null,
    attempt utinyint not null
);
