"""job_costs and batch_costs, checked by hand against known usage: exact DECIMAL money."""

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import staging

from halfrate.load import load_batch, load_job

COLUMNS = (
    "billed_requests",
    "unpriced_requests",
    "long_context_requests",
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
    realtime = Decimal(8300 + 800 + 2650) / 10**6
    got = _job_costs(con, "intents")
    assert got == {
        "billed_requests": 3,
        "unpriced_requests": 0,
        "long_context_requests": 0,
        "input_tokens": 250,
        "cache_write_5m_tokens": 1000,
        "cache_write_1h_tokens": 2000,
        "cache_read_tokens": 2000,
        "output_tokens": 35,
        "batch_cost_usd": realtime / 2,
        "realtime_cost_usd": realtime,
        "savings_usd": realtime / 2,
        "cache_hit_rate": pytest.approx(2000 / (250 + 1000 + 2000 + 2000)),
    }
    batch = con.execute(
        "select batch_id, priced_on::varchar, billed_requests, batch_cost_usd from batch_costs"
    ).fetchall()
    assert batch == [("msgbatch_c1", "2026-11-02", 3, realtime / 2)]


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
    assert got["realtime_cost_usd"] == Decimal("0.30")
    assert got["batch_cost_usd"] == Decimal("0.15")
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
    assert isinstance(got["batch_cost_usd"], Decimal)
    assert got["cache_hit_rate"] is None


# claude-haiku-5-5 from 2026-10-07, USD per MTok (input, output, 5m write, 1h write, read):
# prompts up to 100,000 tokens 0.10 / 0.50 / 0.125 / 0.20 / 0.01; over 100,000 tokens
# 0.50 / 2.50 / 0.625 / (not published) / 0.05, for every token of the request.
HAIKU_55 = "claude-haiku-5-5"


def _haiku_batch(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, usages: list[dict[str, object]]
) -> dict[str, object]:
    job = staging.make_job(tmp_path, model=HAIKU_55)
    ids = [f"r{i}" for i in range(len(usages))]
    s = staging.stage_job(tmp_path, job, [(i, None) for i in ids])
    lines = [
        staging.succeeded(f"a1_{i}", model=HAIKU_55, tokens=u)
        for i, u in zip(ids, usages, strict=True)
    ]
    staging.stage_batch(s, "msgbatch_h", ids, lines)
    _load(con, s)
    return _job_costs(con, "intents")


def test_a_prompt_over_100k_tokens_is_billed_at_the_long_context_band(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    u = staging.usage
    got = _haiku_batch(
        tmp_path,
        con,
        [
            u(100_000, 10),  # exactly 100,000: still the lower band
            u(60_000, 20, write_5m=30_000, read=10_001),  # 100,001 with the cache: long
            u(2_000, 30, read=98_001),  # cache reads count toward the threshold: long
        ],
    )
    low = 100_000 * Decimal("0.10") + 10 * Decimal("0.50")
    long_1 = 60_000 * Decimal("0.50") + 30_000 * Decimal("0.625") + 10_001 * Decimal("0.05")
    long_1 += 20 * Decimal("2.50")
    long_2 = 2_000 * Decimal("0.50") + 98_001 * Decimal("0.05") + 30 * Decimal("2.50")
    realtime = (low + long_1 + long_2) / 10**6
    assert (got["billed_requests"], got["long_context_requests"]) == (3, 2)
    assert got["unpriced_requests"] == 0
    assert got["realtime_cost_usd"] == realtime
    assert got["batch_cost_usd"] == realtime / 2  # exact: no float rounding anywhere
    assert got["savings_usd"] == realtime / 2


def test_an_unpublished_long_context_price_leaves_the_cost_unpriced_not_understated(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    u = staging.usage
    got = _haiku_batch(
        tmp_path,
        con,
        [
            u(99_000, 10, write_1h=5_000),  # 104,000 with a 1h write: no published price
            u(1_000, 10, write_1h=5_000),  # the lower band publishes its 1h price
        ],
    )
    assert (got["billed_requests"], got["unpriced_requests"], got["long_context_requests"]) == (
        2,
        1,
        1,
    )
    assert (got["batch_cost_usd"], got["realtime_cost_usd"], got["savings_usd"]) == (
        None,
        None,
        None,
    )


def test_money_columns_are_decimal_and_tokens_integers(con: duckdb.DuckDBPyConnection) -> None:
    for view in ("batch_costs", "job_costs"):
        types = dict(
            con.execute(f"select column_name, column_type from (describe {view})").fetchall()
        )
        for money in ("batch_cost_usd", "realtime_cost_usd", "savings_usd"):
            assert types[money] == "DECIMAL(24,12)", (view, money)
        assert types["long_context_requests"] == "BIGINT"
    types = dict(con.execute("select column_name, column_type from (describe prices)").fetchall())
    assert types["input"] == "DECIMAL(12,6)" and types["prompt_tokens_over"] == "BIGINT"
