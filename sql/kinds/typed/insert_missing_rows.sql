-- a job's valid outputs its typed table lacks (it was pointed at a new
-- output_table mid-job); typed_table and 'typed_structure' are put in by
-- halfrate/typed_table.py
insert into typed_table by name

with

typed_rows as (
    select row_id
    from typed_table
    where job_name = $job_name
),

missing as (
    select
        job_name,
        row_id,
        attempt,
        output
    from outcomes
    where
        job_name = $job_name
        and output_valid
        and row_id not in (select row_id from typed_rows)
),

final as (
    select
        job_name,
        row_id,
        attempt,
        unnest(json_transform(output, 'typed_structure'))
    from missing
)

select * from final
