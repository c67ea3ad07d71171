"""Retry planning: which rows of an attempt go into the next one, from staged files only."""

from pathlib import Path

import polars as pl
import pytest

from halfrate.ledger import BatchStatus, Ledger, RequestFile
from halfrate.retry import RetryPlanError, plan_retry
from halfrate.workspace import JobPaths

BATCH = {
    "id": "msgbatch_01test",
    "created_at": "2026-11-24T00:00:00Z",
    "expires_at": "2026-11-25T00:00:00Z",
    "processing_status": "ended",
    "request_counts": {"processing": 0, "succeeded": 2, "errored": 2, "canceled": 0, "expired": 1},
}
OUTCOMES = {
    "r1": "succeeded",
    "r2": "retriable",
    "r3": "failed",
    "r4": "invalid_output",
    "r5": "retriable",
}


@pytest.fixture
def job(tmp_path: Path) -> tuple[JobPaths, Ledger]:
    paths = JobPaths(tmp_path / "job")
    paths.rows.parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "row_number": pl.Series([1, 2, 3, 4, 5, 6], dtype=pl.UInt32),
            "row_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
            "text": ["t1", "t2", "t3", "t4", "t5", "t6"],
        }
    ).write_parquet(paths.rows)
    ledger = Ledger.create(paths.ledger)
    request = "requests/a1/part-0001.jsonl"
    ledger.add_request_files([RequestFile(request, 1, 1, "main", 5, 100, "x")])
    ids = list(OUTCOMES)
    paths.requests_dir(1).mkdir(parents=True)
    # Results come back shuffled: the plan must join by custom_id, never by position.
    pl.DataFrame({"custom_id": [f"a1_{i}" for i in ids], "row_id": ids}).write_parquet(
        paths.index_file(request)
    )
    paths.outcomes_file(BATCH["id"]).parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "custom_id": [f"a1_{i}" for i in reversed(ids)],
            "outcome": [OUTCOMES[i] for i in reversed(ids)],
        }
    ).write_parquet(paths.outcomes_file(BATCH["id"]))
    ledger.record_intent(request)
    ledger.record_batch(request, BATCH)
    return paths, ledger


def test_plans_retriable_and_invalid_rows_in_source_order(job: tuple[JobPaths, Ledger]) -> None:
    paths, ledger = job
    ledger.set_status(BATCH["id"], BatchStatus.downloaded)
    todo = plan_retry(paths, ledger, 2)
    assert todo is not None
    assert pl.read_parquet(todo).to_dicts() == [
        {"row_id": "r2", "text": "t2"},
        {"row_id": "r4", "text": "t4"},
        {"row_id": "r5", "text": "t5"},
    ]


def test_rows_with_content_blocks_are_resent_with_them(job: tuple[JobPaths, Ledger]) -> None:
    paths, ledger = job
    rows = pl.read_parquet(paths.rows)
    blocks = rows["text"].map_elements(lambda t: f'[{{"type":"text","text":"{t}"}}]', pl.String)
    rows.drop("text").with_columns(content=blocks).write_parquet(paths.rows)
    ledger.set_status(BATCH["id"], BatchStatus.downloaded)
    todo = plan_retry(paths, ledger, 2)
    assert todo is not None
    assert pl.read_parquet(todo).columns == ["row_id", "content"]
    assert pl.read_parquet(todo)["content"][0] == '[{"type":"text","text":"t2"}]'


def test_plan_is_reused_on_resume(job: tuple[JobPaths, Ledger]) -> None:
    paths, ledger = job
    ledger.set_status(BATCH["id"], BatchStatus.loaded)
    first = plan_retry(paths, ledger, 2)
    assert first is not None
    # Outcomes changing afterwards (a re-parse) must not change an attempt already planned.
    pl.DataFrame({"custom_id": ["a1_r1"], "outcome": ["retriable"]}).write_parquet(
        paths.outcomes_file(BATCH["id"])
    )
    assert plan_retry(paths, ledger, 2) == first
    assert pl.read_parquet(first).height == 3


def test_nothing_to_retry_returns_none(job: tuple[JobPaths, Ledger]) -> None:
    paths, ledger = job
    ledger.set_status(BATCH["id"], BatchStatus.downloaded)
    pl.DataFrame({"custom_id": ["a1_r1"], "outcome": ["succeeded"]}).write_parquet(
        paths.outcomes_file(BATCH["id"])
    )
    assert plan_retry(paths, ledger, 2) is None
    assert plan_retry(paths, ledger, 2) is None  # and stays None


def test_refuses_to_plan_before_the_previous_attempt_is_downloaded(
    job: tuple[JobPaths, Ledger],
) -> None:
    paths, ledger = job
    with pytest.raises(RetryPlanError, match="not downloaded"):
        plan_retry(paths, ledger, 2)
