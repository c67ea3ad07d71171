"""job_estimates (static estimate, pilot projection) and job_estimate_errors against job_costs."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import staging

from halfrate.cost_model import Bracket, CostEstimate, TokenProfile
from halfrate.estimate import save_estimate
from halfrate.job_estimates import sync_estimate_files, sync_estimates
from halfrate.load import load_batch, load_job
from halfrate.pilot_report import PilotMeasure, PilotReport, save_report


def static(expected: float) -> CostEstimate:
    profile = TokenProfile(prefix_tokens=1200, output_tokens=(5, 7, 64))
    return CostEstimate(
        model="claude-sonnet-5", priced_on=datetime.now(UTC).date(), n_requests=2,
        cache_ttl="1h", min_cacheable_tokens=1024, cache_used=True, prime=True,
        prime_reason="sent first", profile=profile, long_context_requests=(0, 0, 0),
        batch=Bracket(low=expected / 2, expected=expected, high=expected * 4),
        realtime=Bracket(low=expected, expected=expected * 2, high=expected * 8),
        unpriced=(), assumptions=(),
    )  # fmt: skip


def pilot(expected: float | None) -> PilotReport:
    measure = PilotMeasure(
        rows=1, requests=1, billed_requests=1, output_tokens_mean=10.0, output_tokens_p95=10.0,
        input_tokens_mean=300.0, cache_hit_rate=0.5, invalid_output_rate=0.0, retry_rate=0.0,
        cost_usd=0.0001, cost_per_row_usd=0.0001,
    )  # fmt: skip
    bracket = Bracket(low=None, expected=None, high=None)
    if expected is not None:
        bracket = Bracket(low=expected * 0.9, expected=expected, high=expected * 1.1)
    return PilotReport(
        job_name="intents", model="claude-sonnet-5", made_at=datetime.now(UTC), pilot=measure,
        known_usd=0.0001, remaining_requests=1, projected=bracket, static=None,
    )  # fmt: skip


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select estimate, low_usd, expected_usd, high_usd, requests, sample_rows "
        "from job_estimates order by all"
    ).fetchall()


def test_estimates_are_synced_idempotently_and_a_dropped_pilot_goes(
    con: duckdb.DuckDBPyConnection,
) -> None:
    sync_estimates(con, "intents", static(0.004), pilot(0.0021))
    first = rows(con)
    assert first == [
        ("pilot", Decimal("0.00189"), Decimal("0.0021"), Decimal("0.00231"), None, 1),
        ("static", Decimal("0.002"), Decimal("0.004"), Decimal("0.016"), 2, None),
    ]
    sync_estimates(con, "intents", static(0.004), pilot(0.0021))
    assert rows(con) == first  # loading again changes nothing
    sync_estimates(con, "intents", static(0.005), None)  # restarted without a pilot
    assert rows(con) == [("static", Decimal("0.0025"), Decimal("0.005"), Decimal("0.02"), 2, None)]
    sync_estimates(con, "other", None, pilot(None))  # unpriced: nulls, never a guess
    assert con.execute(
        "select expected_usd, detail->>'$.rows' from job_estimates where job_name = 'other'"
    ).fetchall() == [(None, "1")]


def test_each_estimate_is_set_next_to_the_actual_cost(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("r1", None), ("r2", None)])
    u = staging.usage
    results = [  # claude-sonnet-5: 200 + 8000 + 100 and 200 + 400 + 200 micro-USD, halved
        staging.succeeded("a1_r1", tokens=u(100, 10, write_1h=2000)),
        staging.succeeded("a1_r2", tokens=u(100, 20, read=2000)),
    ]
    staging.stage_batch(s, "msgbatch_e1", ["r1", "r2"], results)
    load_job(con, s.job, s.paths, s.ledger, s)
    for record in s.ledger.records():
        load_batch(con, s.job, s.paths, record)
    save_estimate(s.paths.root / "estimate.json", static(0.01))
    save_report(s.paths.root / "pilot.json", pilot(0.0045))
    sync_estimate_files(con, "intents", s.paths.root / "estimate.json", s.paths.root / "pilot.json")
    got = con.execute(
        "select estimate, actual_usd, finished, error_usd, round(error_rate, 6), within_range "
        "from job_estimate_errors order by estimate"
    ).fetchall()
    actual = Decimal("0.00455")
    assert got == [
        ("pilot", actual, True, Decimal("0.0045") - actual, round(-0.05 / 4.55, 6), True),
        ("static", actual, True, Decimal("0.01") - actual, round(5.45 / 4.55, 6), False),
    ]
