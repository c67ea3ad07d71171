-- one row: a generate job's answered rows, how many were cut at max_tokens,
-- and their mean output tokens
select
    count(*) as generated,
    count(*) filter (where truncated) as truncated,
    avg(output_tokens) as mean_output_tokens
from generations
where job_name = $job_name
