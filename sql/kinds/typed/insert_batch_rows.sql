-- the latest valid output of each source row this batch answered, one typed
-- column per property (json_transform with the structure literal; typed_table
-- and 'typed_structure' are put in by halfrate/typed_table.py)
insert into typed_table by name

with

batch_rows as (
    select distinct row_id
    from requests
    where batch_id = $batch_id
),

valid_outputs as (
    select
        outcomes.job_name,
        outcomes.row_id,
        outcomes.attempt,
        outcomes.output
    from outcomes
    semi join batch_rows
        on outcomes.row_id = batch_rows.row_id
    where
        outcomes.job_name = $job_name
        and outcomes.output_valid
),

final as (
    select
        job_name,
        row_id,
        attempt,
        unnest(json_transform(output, 'typed_structure'))
    from valid_outputs
)

select * from final
