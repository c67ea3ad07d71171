-- grain: one row per request the API refused even alone (key: job_name, custom_id)
-- a 413 for a one-request file: nothing was sent; the row ends `failed`
create table if not exists unsent_requests (
    job_name varchar not null,
    custom_id varchar not null,
    row_id varchar not null,
    attempt utinyint not null,
    request_file varchar not null,
    reason varchar not null,
    request varchar default '',
    primary key (job_name, custom_id)
);
