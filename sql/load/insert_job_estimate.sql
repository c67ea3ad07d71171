insert into job_estimates (
    job_name,
    estimate,
    low_usd,
    expected_usd,
    high_usd,
    requests,
    sample_rows,
    made_at,
    detail
)
values (
    $job_name,
    $estimate,
    $low_usd,
    $expected_usd,
    $high_usd,
    $requests,
    $sample_rows,
    $made_at,
    $detail
)
