-- what a judge job's summary shows per criterion: the mean score (null for
-- verdicts and pairwise) and the distribution as people read it
select
    criterion,
    mean,
    if(mean is null, '', 'mean ' || round(mean, 2) || ' · ')
    || array_to_string(
        list_transform(
            map_entries(distribution),
            lambda e: e.key || ': ' || e.value
        ),
        ', '
    )
    || ' (' || n || ' rows'
    || if(
        consistency is null,
        '',
        ', ' || round(100 * consistency, 1) || '% consistent in both orders'
    )
    || ')' as text
from judge_scores
where job_name = $job_name
order by criterion
