"""Rows that end without a result of their own: canceled by the user, or refused alone (413)."""

from pathlib import Path

import duckdb
import staging

from halfrate.ledger import BatchStatus
from halfrate.load import load_batch, load_job
from halfrate.stops import load_stops


def outcomes(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select row_id, final_state, reason from row_outcomes order by row_id"
    ).fetchall()


def test_rows_of_a_batch_the_user_canceled_end_canceled_by_the_user(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("x", None), ("y", None)])
    record = staging.stage_batch(
        s, "b1", ["x", "y"], [staging.succeeded("a1_x"), staging.canceled("a1_y")]
    )
    load_job(con, s.job, s.paths, s.ledger, s)
    load_batch(con, s.job, s.paths, record)
    load_stops(con, s.job.name, s.paths, s.ledger)
    # attempt 1 of 2: a canceled request is retriable, so it waits for the next attempt
    assert outcomes(con)[1][:2] == ("y", "pending")

    s.ledger.request_cancel(["b1"])
    load_stops(con, s.job.name, s.paths, s.ledger)
    load_stops(con, s.job.name, s.paths, s.ledger)  # idempotent
    assert outcomes(con) == [
        ("x", "succeeded", None),
        ("y", "canceled", "canceled by the user"),
    ]
    assert con.execute("select batch_id, job_name from user_cancels").fetchall() == [
        ("b1", "intents")
    ]


def test_a_request_the_api_refuses_even_alone_ends_failed_with_the_reason(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("x", None), ("big", None)])
    record = staging.stage_batch(s, "b1", ["x"], [staging.succeeded("a1_x")])
    alone = staging.stage_batch(s, "b2", ["big"], [staging.succeeded("a1_big")], part=2)
    # b2 stands in for the file's request; the API refused it (413) and no batch was made
    s.ledger.release_foreign(alone.file.path, "b2", "test: no batch")
    s.ledger.mark_failed(alone.file.path, "the API refuses this request as too large even alone")
    assert s.ledger.record(alone.file.path).status is BatchStatus.failed
    load_job(con, s.job, s.paths, s.ledger, s)
    load_batch(con, s.job, s.paths, record)
    load_stops(con, s.job.name, s.paths, s.ledger)
    load_stops(con, s.job.name, s.paths, s.ledger)
    assert outcomes(con) == [
        ("big", "failed", "the API refuses this request as too large even alone"),
        ("x", "succeeded", None),
    ]
