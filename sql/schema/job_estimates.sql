-- grain: one row per job and kind of estimate (key: job_name, estimate)
-- estimate: 'static' (before sending, from count_tokens and the job's settings:
--   the job folder's estimate.json) or 'pilot' (projected from what the pilot's
--   sampled rows really used: pilot.json). Both price the whole job at batch
--   prices, DECIMAL(24,12) like job_costs; null when it cannot be priced.
--   static: low/high are the scenarios of the cost model; pilot: a 90%
--   bootstrap interval over the pilot's requests.
-- requests: the requests the static estimate prices (attempt 1);
-- sample_rows: the rows the pilot measured (null for 'static').
-- detail: what the estimate rests on (the pilot's measurements).
-- The job_estimate_errors view sets each next to the job's actual cost.
create table if not exists job_estimates (
    job_name varchar not null,
    estimate varchar not null,
    low_usd decimal(24, 12),
    expected_usd decimal(24, 12),
    high_usd decimal(24, 12),
    requests integer,
    sample_rows integer,
    made_at timestamp not null,
    detail json,
    primary key (job_name, estimate)
);
