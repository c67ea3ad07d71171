-- grain: one row per quarantined source row (key: job_name, row_number)
create table if not exists quarantine (
    job_name varchar not null,
    row_number uinteger not null,
    row_id varchar,
    reason varchar not null,
    primary key (job_name, row_number)
);
