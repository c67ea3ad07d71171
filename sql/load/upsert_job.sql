insert into jobs (
    job_name,
    kind,
    model,
    fingerprint,
    config,
    source,
    max_attempts,
    request_keys,
    n_rows,
    n_quarantined,
    created_at,
    updated_at
)
values (
    $job_name,
    $kind,
    $model,
    $fingerprint,
    $config,
    $source,
    $max_attempts,
    $request_keys,
    $n_rows,
    $n_quarantined,
    $now,
    $now
)
on conflict (job_name) do update set
    kind = excluded.kind,
    model = excluded.model,
    fingerprint = excluded.fingerprint,
    config = excluded.config,
    source = excluded.source,
    max_attempts = excluded.max_attempts,
    request_keys = excluded.request_keys,
    n_rows = excluded.n_rows,
    n_quarantined = excluded.n_quarantined,
    updated_at = excluded.updated_at
