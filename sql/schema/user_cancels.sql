-- grain: one row per batch the user canceled (key: batch_id)
-- `halfrate cancel` or a cancel from the Prefect UI; the canceled requests of
-- these batches end `canceled` in row_outcomes, not `exhausted` or `pending`
create table if not exists user_cancels (
    batch_id varchar primary key,
    job_name varchar not null,
    canceled_at timestamp not null
);
