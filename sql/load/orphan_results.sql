-- results of a batch whose custom_id is not among its requests (count, example)
with

results as (
    select custom_id
    from results
    where batch_id = $batch_id
),

requests as (
    select custom_id
    from requests
    where batch_id = $batch_id
),

final as (
    select custom_id
    from results
    anti join requests
        on results.custom_id = requests.custom_id
)

select
    count(*) as orphans,
    min(custom_id) as example
from final
