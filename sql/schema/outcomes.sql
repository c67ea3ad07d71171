-- grain: one row per answered source row and request, latest result
-- (key: job_name, row_id, request; request is '' unless the kind sends several
-- requests per row, e.g. judge's pairwise 'ab' and 'ba')
-- the generic record of where each row stands, whatever the job's kind: the
-- outcome drives row_outcomes; output is the validated output (null unless
-- output_valid); kinds read their fields from it (sql/kinds/<kind>/)
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql;
-- no primary-key index: it makes bulk loads and reloads several times slower
create table if not exists outcomes (
    job_name varchar not null,
    row_id varchar not null,
    custom_id varchar not null,
    batch_id varchar not null,
    attempt utinyint not null,
    result_type varchar not null,
    outcome varchar not null,
    output varchar,
    output_valid boolean,
    invalid_reason varchar,
    error_type varchar,
    error_message varchar,
    request varchar default ''
);
