"""A batch the deadline canceled and the real-time pseudo-batch that finished it: one answer per
row in outcomes, nothing left to retry, and batch and real-time spend priced apart (exact)."""

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest
import staging

from halfrate.gateway import body_size
from halfrate.ledger import RequestFile
from halfrate.load import load_batch, load_job
from halfrate.realtime_log import RealtimeLog, load_lost_calls
from halfrate.retry import plan_retry
from halfrate.summary import summarize

RT = "rt_20261102110000_abcdef012345"


def stage_realtime(
    s: staging.Staged, row_ids: list[str], results: list[dict[str, Any]], lost: dict[str, int]
) -> None:
    """The deadline's remainder file of part-0001, sent in real time as the pseudo-batch RT."""
    path = s.paths.requests_dir(1) / "part-0001.rt.jsonl"
    ids = [staging.custom_id(1, r) for r in row_ids]
    body = b"".join(
        orjson.dumps({"custom_id": c, "params": {"model": s.job.model}}) + b"\n" for c in ids
    )
    path.write_bytes(body)
    relative = s.paths.relative(path)
    pl.DataFrame(
        {"custom_id": ids, "row_id": row_ids, "attempt": [1] * len(ids)},
        schema={"custom_id": pl.Utf8, "row_id": pl.Utf8, "attempt": pl.UInt8},
    ).write_parquet(s.paths.index_file(relative))
    s.ledger.add_request_files(
        [
            RequestFile(
                relative, 1, 1, "main", len(ids), body_size(len(body)),
                hashlib.sha256(body).hexdigest(), parent="requests/a1/part-0001.jsonl",
            )
        ]
    )  # fmt: skip
    s.ledger.record_realtime(relative, RT, len(ids))
    calls = RealtimeLog(s.ledger)
    for custom_id, n in lost.items():
        for _ in range(n):
            calls.sending(RT, custom_id)
            calls.lost(RT, custom_id)
    staging.write_jsonl(s.paths.results_file(RT), results)
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for line in results:
        counts[line["result"]["type"]] += 1
    s.ledger.end_realtime(RT, counts)


@pytest.mark.parametrize(
    "batch_created_at",
    # the API's clock ahead of ours: the real-time answer still wins over the canceled result
    ["2026-11-02T10:00:00.000000Z", "2099-11-02T10:00:00.000000Z"],
)
def test_the_real_time_answers_supersede_the_canceled_ones_and_are_priced_at_full_price(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, batch_created_at: str
) -> None:
    # claude-sonnet-5, USD per MTok: input 2, output 10, write 1h 4, read 0.20
    rows = [(f"r{i}", None) for i in range(1, 5)]
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), rows)
    u = staging.usage
    staging.stage_batch(
        s,
        "msgbatch_c1",
        ["r1", "r2", "r3", "r4"],
        [
            staging.succeeded("a1_r1", tokens=u(100, 10, write_1h=2000)),  # 200 + 8000 + 100
            staging.succeeded("a1_r2", tokens=u(100, 20, read=2000)),  # 200 + 400 + 200
            staging.canceled("a1_r3"),  # the deadline's cancel
            staging.canceled("a1_r4"),
        ],
        created_at=batch_created_at,
    )
    stage_realtime(
        s,
        ["r3", "r4"],
        [
            staging.succeeded("a1_r3", tokens=u(100, 10, read=2000)),  # 200 + 400 + 100
            staging.succeeded("a1_r4", tokens=u(300, 30, read=2000)),  # 600 + 400 + 300
        ],
        lost={"a1_r4": 1},  # one call lost its answer: r4 was possibly paid twice
    )
    load_job(con, s.job, s.paths, s.ledger, s)
    for record in s.ledger.records():
        load_batch(con, s.job, s.paths, record)
    load_lost_calls(con, s.job.name, s.ledger)

    outcomes = con.execute(
        "select row_id, batch_id, outcome from outcomes order by row_id"
    ).fetchall()
    assert outcomes == [
        ("r1", "msgbatch_c1", "succeeded"),
        ("r2", "msgbatch_c1", "succeeded"),
        ("r3", RT, "succeeded"),
        ("r4", RT, "succeeded"),
    ]
    states = con.execute("select distinct final_state from row_outcomes").fetchall()
    assert states == [("succeeded",)]
    assert plan_retry(s.paths, s.ledger, 2) is None  # the canceled results were answered

    batch_list, rt_list = Decimal(8300 + 800) / 10**6, Decimal(700 + 1300) / 10**6
    costs = con.execute(
        "select batch_cost_usd, realtime_spend_usd, cost_usd, realtime_cost_usd, savings_usd,"
        " realtime_requests, possible_duplicate_requests, possible_duplicate_cost_usd,"
        " batches, billed_requests from job_costs"
    ).fetchone()
    assert costs == (
        batch_list / 2,
        rt_list,  # no batch discount
        batch_list / 2 + rt_list,
        batch_list + rt_list,
        batch_list / 2,  # only the batch half saved anything
        2,
        1,
        Decimal(1300) / 10**6,  # the lost call priced as r4's kept answer
        1,  # the pseudo-batch is not a batch
        4,
    )
    modes = con.execute("select batch_id, mode from batch_costs order by mode").fetchall()
    assert modes == [("msgbatch_c1", "batch"), (RT, "realtime")]

    summary = summarize(con, s.job, tmp_path / "w.duckdb")
    assert summary.realtime_rows == 2 and summary.batches == 1
    assert summary.possible_duplicate_requests == 1
    assert summary.cost_usd == float(batch_list / 2 + rt_list)

    load_lost_calls(con, s.job.name, s.ledger)  # loading again changes nothing
    assert con.execute("select count(*), sum(lost_calls) from lost_calls").fetchone() == (1, 1)
