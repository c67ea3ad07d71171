-- grain: one row per source row of a job with a valid output (key: job_name,
-- row_id); one typed column per top-level property of the job's schema, typed
-- by the structure literal halfrate/typed_table.py puts in (typed_table and
-- 'typed_structure' are placeholders for the checked, quoted name and it)
create table if not exists typed_table as
select
    ''::varchar as job_name,
    ''::varchar as row_id,
    0::utinyint as attempt,
    unnest(json_transform('{}', 'typed_structure'))
limit 0
