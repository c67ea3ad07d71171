-- grain: one row per valid source row of a job (key: job_name, row_id)
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql;
-- no primary-key index: it makes bulk loads and reloads several times slower
create table if not exists job_rows (
    job_name varchar not null,
    row_id varchar not null,
    row_number uinteger not null,
    gold varchar
);
