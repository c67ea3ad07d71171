-- grain: one row per judged source row and criterion (key: job_name, row_id, criterion)
-- a row is judged once all its requests have a valid output (pairwise: both
-- orders). score (a scale) or verdict (verdicts); pairwise: winner is a, b or tie
-- when both orders named it, else inconsistent; winner_ab / winner_ba are what
-- each order said (in a/b terms), rationale is the first order's, rationale_ba
-- the swapped order's. batch_id: the latest batch behind the judgement.
-- key kept by the loads (delete + insert per batch, job), tested in tests/sql
create table if not exists judgements (
    job_name varchar not null,
    row_id varchar not null,
    criterion varchar not null,
    score integer,
    verdict varchar,
    winner varchar,
    winner_ab varchar,
    winner_ba varchar,
    rationale varchar,
    rationale_ba varchar,
    batch_id varchar not null
);
