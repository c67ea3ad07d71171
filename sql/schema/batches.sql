-- grain: one row per batch sent to the API (key: batch_id); times are UTC
-- mode: 'batch', or 'realtime' for a real-time pseudo-batch (batch_id rt_...):
-- a request file whose requests halfrate sent through the Messages API at full
-- price (`mode: realtime`, or past the job's deadline)
create table if not exists batches (
    batch_id varchar primary key,
    job_name varchar not null,
    attempt utinyint not null,
    purpose varchar not null,
    request_file varchar not null,
    n_requests integer not null,
    body_bytes bigint not null,
    created_at timestamp,
    expires_at timestamp,
    ended_at timestamp,
    processing_status varchar,
    processing_count integer,
    succeeded_count integer,
    errored_count integer,
    canceled_count integer,
    expired_count integer,
    ledger_status varchar,
    updated_at timestamp not null,
    mode varchar default 'batch'
);
