-- grain: one row per request sent, i.e. per custom_id per batch (key: batch_id, custom_id)
create table if not exists requests (
    batch_id varchar not null,
    custom_id varchar not null,
    job_name varchar not null,
    row_id varchar not null,
    attempt utinyint not null,
    primary key (batch_id, custom_id)
);
