-- grain: one row per request sent to a batch (key: batch_id, custom_id)
-- request: the request's key within its row ('' for kinds with one request per row)
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql;
-- no primary-key index: it makes bulk loads and reloads several times slower
create table if not exists requests (
    batch_id varchar not null,
    custom_id varchar not null,
    job_name varchar not null,
    row_id varchar not null,
    attempt utinyint not null,
    request varchar default ''
);
