"""job_costs and batch_costs, checked by hand against known usage."""

from pathlib import Path

import duckdb
import pytest
import staging

from halfrate.load import load_batch, load_job

COLUMNS = (
    "billed_requests",
    "unpriced_requests",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "batch_cost_usd",
    "realtime_cost_usd",
    "savings_usd",
    "cache_hit_rate",
)


def _job_costs(con: duckdb.DuckDBPyConnection, job_name: str) -> dict[str, object]:
    cursor = con.execute(
        f"select {', '.join(COLUMNS)} from job_costs where job_name = ?", [job_name]
    )
    row = cursor.fetchone()
    assert row is not None
    return dict(zip(COLUMNS, row, strict=True))


def _load(con: duckdb.DuckDBPyConnection, s: staging.Staged) -> None:
    load_job(con, s.job, s.paths, s.ledger, s)
    for record in s.ledger.records():
        load_batch(con, s.job, s.paths, record)


def test_costs_bill_succeeded_requests_at_half_the_dated_price(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # claude-sonnet-5, USD per MTok: input 2, output 10, write 5m 2.50, write 1h 4, read 0.20
    rows = [(f"r{i}", None) for i in range(1, 6)]
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), rows)
    u = staging.usage
    results = [
        staging.succeeded("a1_r1", tokens=u(100, 10, write_1h=2000)),  # 200 + 8000 + 100
        staging.succeeded("a1_r2", tokens=u(100, 20, read=2000)),  # 200 + 400 + 200
        staging.succeeded("a1_r3", '{"label":"x"}', tokens=u(50, 5, write_5m=1000)),
        staging.errored("a1_r4", "api_error", "Internal error"),  # not billed
        staging.expired("a1_r5"),  # not billed
    ]  # r3: 100 + 2500 + 50 = 2650 (an invalid output is still billed)
    staging.stage_batch(s, "msgbatch_c1", [r for r, _ in rows], results)
    _load(con, s)
    realtime = (8300 + 800 + 2650) / 1e6
    got = _job_costs(con, "intents")
    assert got == {
        "billed_requests": 3,
        "unpriced_requests": 0,
        "input_tokens": 250,
        "cache_write_5m_tokens": 1000,
        "cache_write_1h_tokens": 2000,
        "cache_read_tokens": 2000,
        "output_tokens": 35,
        "batch_cost_usd": pytest.approx(realtime / 2),
        "realtime_cost_usd": pytest.approx(realtime),
        "savings_usd": pytest.approx(realtime / 2),
        "cache_hit_rate": pytest.approx(2000 / (250 + 1000 + 2000 + 2000)),
    }
    batch = con.execute(
        "select batch_id, priced_on::varchar, billed_requests, batch_cost_usd from batch_costs"
    ).fetchall()
    assert batch == [("msgbatch_c1", "2026-11-02", 3, pytest.approx(realtime / 2))]


def test_the_price_in_effect_on_the_batch_date_applies(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # claude-sonnet-5-5's cache read went from 0.20 to 0.10 per MTok on 2026-10-07
    job = staging.make_job(tmp_path, model="claude-sonnet-5-5")
    s = staging.stage_job(tmp_path, job, [("a", None), ("b", None)])
    read_only = staging.usage(0, 0, read=1_000_000)
    for attempt, (row, day) in enumerate((("a", "2026-10-06"), ("b", "2026-10-07")), start=1):
        line = staging.succeeded(f"a{attempt}_{row}", model=job.model, tokens=read_only)
        staging.stage_batch(
            s, f"msgbatch_{row}", [row], [line], attempt=attempt, created_at=f"{day}T10:00:00Z"
        )
    _load(con, s)
    got = _job_costs(con, "intents")
    assert got["realtime_cost_usd"] == pytest.approx(0.20 + 0.10)
    assert got["batch_cost_usd"] == pytest.approx(0.15)
    assert got["cache_hit_rate"] == 1.0


def test_an_unpriced_model_shows_instead_of_costing_zero(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    job = staging.make_job(tmp_path, model="claude-future-9")
    s = staging.stage_job(tmp_path, job, [("a", None), ("b", None)])
    results = [
        staging.succeeded("a1_a", model="claude-future-9", tokens=staging.usage(10, 5)),
        staging.errored("a1_b"),
    ]
    staging.stage_batch(s, "msgbatch_u", ["a", "b"], results)
    _load(con, s)
    got = _job_costs(con, "intents")
    assert (got["billed_requests"], got["unpriced_requests"], got["input_tokens"]) == (1, 1, 10)
    assert (got["batch_cost_usd"], got["realtime_cost_usd"], got["savings_usd"]) == (
        None,
        None,
        None,
    )


def test_a_job_without_results_costs_nothing_yet(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("a", None)])
    load_job(con, s.job, s.paths, s.ledger, s)
    got = _job_costs(con, "intents")
    assert (got["billed_requests"], got["batch_cost_usd"], got["savings_usd"]) == (0, 0, 0)
    assert got["cache_hit_rate"] is None
