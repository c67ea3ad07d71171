-- grain: one row per job (key: job_name)
create table if not exists jobs (
    job_name varchar primary key,
    kind varchar not null,
    model varchar not null,
    fingerprint varchar not null,
    config json not null,
    source varchar not null,
    max_attempts utinyint not null,
    n_rows integer,
    n_quarantined integer,
    created_at timestamp not null,
    updated_at timestamp not null,
    request_keys varchar [] default ['']
);
