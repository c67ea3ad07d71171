-- grain: one row per valid source row of a job (key: job_name, row_id)
create table if not exists job_rows (
    job_name varchar not null,
    row_id varchar not null,
    row_number uinteger not null,
    gold varchar,
    primary key (job_name, row_id)
);
