-- a judge job's outputs: its judgements, one row per judged row and criterion
copy (
    select
        row_id,
        criterion,
        score,
        verdict,
        winner,
        winner_ab,
        winner_ba,
        rationale,
        rationale_ba
    from judgements
    where job_name = $job_name
    order by row_id, criterion
) to $out (format parquet)
