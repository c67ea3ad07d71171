-- grain: one row per real-time request with a lost call (key: batch_id, custom_id)
-- lost_calls: Messages calls of the request whose answer never came (a timeout,
-- a dropped connection, a killed run): each may have been charged, and the
-- request was sent again once, so each is a possible double charge (job_costs:
-- possible_duplicate_requests / possible_duplicate_cost_usd). From the ledger.
create table if not exists lost_calls (
    batch_id varchar not null,
    custom_id varchar not null,
    job_name varchar not null,
    lost_calls integer not null
);
