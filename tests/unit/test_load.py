"""load_job / load_batch refuse staged files they cannot load, naming the file and the fix."""

import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from halfrate.ledger import BatchRecord
from halfrate.load import LoadError, load_batch, load_job
from halfrate.results import ResultsFormatError
from halfrate.warehouse import ensure_schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
staging = importlib.import_module("staging")


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    ensure_schema(connection)
    yield connection
    connection.close()


@pytest.fixture
def staged(tmp_path: Path) -> "staging.Staged":
    return staging.stage_job(tmp_path, staging.make_job(tmp_path), [("a", "card"), ("b", None)])


def test_load_job_needs_the_extract_files(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    staged.paths.quarantine.unlink()
    with pytest.raises(LoadError, match=r"quarantine\.parquet: staged extract file missing"):
        load_job(con, staged.job, staged.paths, staged.ledger, staged)


def test_load_job_refuses_counts_that_disagree_with_the_files(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    wrong = dataclasses.replace(staged, valid_rows=3)
    with pytest.raises(LoadError, match="holds 2 rows and 0 quarantined, but extract reported 3"):
        load_job(con, staged.job, staged.paths, staged.ledger, wrong)
    assert con.execute("select count(*) from jobs").fetchone() == (0,)


def test_load_job_without_gold_column(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    job = staging.make_job(tmp_path, gold_column=None)
    s = staging.stage_job(tmp_path, job, [("a", None)])
    load_job(con, s.job, s.paths, s.ledger, s)
    load_job(con, s.job, s.paths, s.ledger, s)
    assert con.execute("select row_id, row_number, gold from job_rows").fetchall() == [
        ("a", 1, None)
    ]
    assert con.execute("select job_name, n_rows, max_attempts from jobs").fetchall() == [
        ("intents", 1, 2)
    ]


def test_load_batch_needs_a_batch_id(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    record = staging.stage_batch(staged, "b1", ["a"], [staging.succeeded("a1_a")])
    no_batch = dataclasses.replace(record, batch_id=None)
    with pytest.raises(LoadError, match=r"part-0001\.jsonl: has no batch yet"):
        load_batch(con, staged.job, staged.paths, no_batch)


def test_load_batch_needs_the_request_index(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    record: BatchRecord = staging.stage_batch(staged, "b1", ["a"], [staging.succeeded("a1_a")])
    staged.paths.index_file(record.file.path).unlink()
    with pytest.raises(LoadError, match=r"part-0001\.index\.parquet: request index missing"):
        load_batch(con, staged.job, staged.paths, record)


def test_load_batch_reports_a_damaged_raw_file(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    record = staging.stage_batch(staged, "b1", ["a"], [staging.succeeded("a1_a")])
    raw = staged.paths.results_file("b1")
    raw.write_bytes(raw.read_bytes()[:40])
    with pytest.raises(ResultsFormatError, match=r"b1\.jsonl: line 1: not valid JSON"):
        load_batch(con, staged.job, staged.paths, record)
    assert con.execute("select count(*) from batches").fetchone() == (0,)


def test_batch_timestamps_are_stored_as_utc(
    con: duckdb.DuckDBPyConnection, staged: "staging.Staged"
) -> None:
    record = staging.stage_batch(
        staged, "b1", ["a"], [staging.succeeded("a1_a")], created_at="2026-11-02T10:00:00+02:00"
    )
    load_job(con, staged.job, staged.paths, staged.ledger, staged)
    load_batch(con, staged.job, staged.paths, record)
    assert con.execute("select created_at::varchar from batches").fetchone() == (
        "2026-11-02 08:00:00",
    )
