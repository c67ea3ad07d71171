-- the share of a label job's rows with a gold label whose final label matches it
select
    count(*) filter (where gold is not null) as gold_rows,
    avg(case when correct then 1.0 else 0.0 end) filter (
        where gold is not null
    ) as accuracy
from labels
where job_name = $job_name
