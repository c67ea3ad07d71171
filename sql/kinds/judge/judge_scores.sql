-- grain: one row per judge job and criterion (key: job_name, criterion)
-- n judged rows; mean, min and max score (a scale; null for verdicts and
-- pairwise); distribution: how many rows got each score, verdict or pairwise
-- winner (a, b, tie, inconsistent), in order; consistency (pairwise): the
-- share of rows whose two orders agreed
create or replace view judge_scores as

with

judgements as (
    select
        job_name,
        criterion,
        score,
        coalesce(score::varchar, verdict, winner) as value,
        winner
    from judgements
),

value_counts as (
    select
        job_name,
        criterion,
        value,
        any_value(score) as score,
        count(*) as n
    from judgements
    group by job_name, criterion, value
),

distributions as (
    select
        job_name,
        criterion,
        map(
            list(value order by score nulls last, value),
            list(n order by score nulls last, value)
        ) as distribution
    from value_counts
    group by job_name, criterion
),

stats as (
    select
        job_name,
        criterion,
        count(*) as n,
        avg(score) as mean,
        min(score) as min,
        max(score) as max,
        avg((winner <> 'inconsistent')::int) as consistency
    from judgements
    group by job_name, criterion
),

final as (
    select
        stats.job_name,
        stats.criterion,
        stats.n,
        stats.mean,
        stats.min,
        stats.max,
        distributions.distribution,
        stats.consistency
    from stats
    inner join distributions
        on
            stats.job_name = distributions.job_name
            and stats.criterion = distributions.criterion
)

select * from final
