"""Loads into a real DuckDB file: keys, idempotency, labels joined by custom_id, row_outcomes."""

import random
from pathlib import Path
from typing import Literal

import duckdb
import pytest
import staging
from test_schema import TABLES, VIEWS

from halfrate.kinds import KINDS
from halfrate.kinds.base import JobBase, Kind
from halfrate.load import LoadError, load_batch, load_job

ROWS = [
    ("r_ok", "billing"),
    ("r_fail", "card"),
    ("r_exh", "other"),
    ("r_inv", "card"),
    ("r_pend", "other"),
    ("r_retry", "card"),
    ("r_new", None),
]
QUARANTINE = [(8, "r_dup", "duplicate id"), (9, None, "missing id")]


@pytest.fixture
def staged(tmp_path: Path) -> staging.Staged:
    """A job with max_attempts 2 whose rows reach every final state over two attempts."""
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), ROWS, QUARANTINE)
    first = [
        staging.succeeded("a1_r_ok", '{"label":"billing"}'),
        staging.errored("a1_r_fail", "invalid_request_error", "prompt is too long"),
        staging.expired("a1_r_exh"),
        staging.succeeded("a1_r_inv", '{"label":"nope"}'),
        staging.errored("a1_r_pend", "overloaded_error", "Overloaded"),
        staging.canceled("a1_r_retry"),
    ]
    random.Random(3).shuffle(first)  # results come back in any order
    staging.stage_batch(s, "msgbatch_a1", [r for r, _ in ROWS[:6]], first)
    second = [
        staging.expired("a2_r_exh"),
        staging.succeeded("a2_r_inv", "not json"),
        staging.succeeded("a2_r_retry", '{"label":"card"}'),
    ]
    staging.stage_batch(s, "msgbatch_a2", ["r_exh", "r_inv", "r_retry"], second, attempt=2)
    return s


def _load_all(con: duckdb.DuckDBPyConnection, s: staging.Staged) -> None:
    load_job(con, s.job, s.paths, s.ledger, s)
    for record in s.ledger.records():
        load_batch(con, s.job, s.paths, record)


def test_row_outcomes_has_one_row_per_input_row_in_every_state(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    _load_all(con, staged)
    got = con.execute(
        "select row_id, row_number, final_state, reason, attempts from row_outcomes"
        " order by row_number"
    ).fetchall()
    assert got == [
        ("r_ok", 1, "succeeded", None, 1),
        ("r_fail", 2, "failed", "invalid_request_error: prompt is too long", 1),
        ("r_exh", 3, "exhausted", "expired", 2),
        ("r_inv", 4, "invalid_output", "not JSON", 2),
        ("r_pend", 5, "pending", "overloaded_error: Overloaded", 1),
        ("r_retry", 6, "succeeded", None, 2),
        ("r_new", 7, "pending", None, 0),
        ("r_dup", 8, "quarantined", "duplicate id", 0),
        (None, 9, "quarantined", "missing id", 0),
    ]


def test_labels_join_back_by_custom_id_with_gold(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    _load_all(con, staged)
    got = con.execute(
        "select row_id, custom_id, attempt, label, gold, correct, output_valid, outcome"
        " from labels order by row_id"
    ).fetchall()
    assert got == [
        ("r_exh", "a2_r_exh", 2, None, "other", None, None, "retriable"),
        ("r_fail", "a1_r_fail", 1, None, "card", None, None, "failed"),
        ("r_inv", "a2_r_inv", 2, None, "card", None, False, "invalid_output"),
        ("r_ok", "a1_r_ok", 1, "billing", "billing", True, True, "succeeded"),
        ("r_pend", "a1_r_pend", 1, None, "other", None, None, "retriable"),
        ("r_retry", "a2_r_retry", 2, "card", "card", True, True, "succeeded"),
    ]


def test_a_wrong_label_is_not_correct(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("x", "card")])
    record = staging.stage_batch(s, "b1", ["x"], [staging.succeeded("a1_x", '{"label":"other"}')])
    load_job(con, s.job, s.paths, s.ledger, s)
    assert load_batch(con, s.job, s.paths, record) == 1
    assert con.execute("select label, gold, correct from labels").fetchall() == [
        ("other", "card", False)
    ]


def test_keys_are_unique_and_not_null(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    _load_all(con, staged)
    for name, key in (TABLES | VIEWS).items():
        cols = ", ".join(key)
        nulls = " or ".join(f"{c} is null" for c in key)
        total, distinct, null_keys = con.execute(
            f"select count(*), count(distinct ({cols})), count(*) filter (where {nulls})"
            f" from {name}"
        ).fetchone() or (0, 0, 0)
        assert total > 0, name
        assert (distinct, null_keys) == (total, 0), name


def _snapshot(con: duckdb.DuckDBPyConnection) -> None:
    for name in TABLES:
        con.execute(f"create or replace temp table snap_{name} as {_stable(name)}")


def _stable(name: str) -> str:
    drop = " exclude (updated_at)" if name in ("jobs", "batches") else ""
    return f"select *{drop} from {name}"


def test_loading_twice_changes_nothing(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    _load_all(con, staged)
    _snapshot(con)
    counts = {n: con.execute(f"select count(*) from {n}").fetchone() for n in TABLES}
    _load_all(con, staged)
    # and a batch alone, out of order (attempt 1 after attempt 2)
    load_batch(con, staged.job, staged.paths, staged.ledger.records(attempt=1)[0])
    for name in TABLES:
        for a, b in ((name, f"snap_{name}"), (f"snap_{name}", name)):
            left = _stable(a) if a == name else f"select * from {a}"
            right = _stable(b) if b == name else f"select * from {b}"
            diff = con.execute(f"select count(*) from ({left} except all {right})").fetchone()
            assert diff == (0,), f"{name}: {a} except all {b}"
        assert con.execute(f"select count(*) from {name}").fetchone() == counts[name]


def test_results_keep_every_parsed_column(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    _load_all(con, staged)
    row = con.execute(
        "select job_name, result_type, error_type, error_message, outcome from results"
        " where custom_id = 'a1_r_fail'"
    ).fetchone()
    assert row == ("intents", "errored", "invalid_request_error", "prompt is too long", "failed")
    assert con.execute("select count(*) from results").fetchone() == (9,)
    batches = con.execute(
        "select batch_id, attempt, purpose, n_requests, created_at::varchar, ended_at::varchar,"
        " succeeded_count, expired_count, ledger_status from batches order by batch_id"
    ).fetchall()
    assert batches[0] == (
        "msgbatch_a1",
        1,
        "main",
        6,
        "2026-11-02 10:00:00",
        "2026-11-02 11:00:00",
        2,
        1,
        "downloaded",
    )


def test_load_batch_parses_the_raw_results_into_the_warehouse_and_stages_the_outcomes(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged
) -> None:
    record = staged.ledger.records(attempt=1)[0]
    outcomes = staged.paths.outcomes_file("msgbatch_a1")
    assert not outcomes.exists()
    load_job(con, staged.job, staged.paths, staged.ledger, staged)
    assert load_batch(con, staged.job, staged.paths, record) == 6
    # Nothing between the raw file and the warehouse but the retry outcomes (the retry plan
    # reads them, never the warehouse), equal to what the load wrote.
    assert sorted(p.name for p in outcomes.parent.glob("msgbatch_a1*")) == [
        "msgbatch_a1.jsonl",
        "msgbatch_a1.outcomes.parquet",
    ]
    staged_outcomes = dict(
        duckdb.execute("select custom_id, outcome from read_parquet(?)", [str(outcomes)]).fetchall()
    )
    loaded = dict(
        con.execute(
            "select custom_id, outcome from results where batch_id = 'msgbatch_a1'"
        ).fetchall()
    )
    assert staged_outcomes == loaded and len(loaded) == 6
    assert con.execute(
        "select count(*) from duckdb_tables() where table_name = 'parsed_results'"
    ).fetchone() == (0,)


def test_results_that_are_not_in_the_request_index_are_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("x", "card"), ("y", "card")])
    record = staging.stage_batch(
        s, "b1", ["x"], [staging.succeeded("a1_x"), staging.succeeded("a1_zz")]
    )
    load_job(con, s.job, s.paths, s.ledger, s)
    with pytest.raises(LoadError, match=r"1 results have a custom_id that is not in .*'a1_zz'"):
        load_batch(con, s.job, s.paths, record)
    # the transaction was rolled back: nothing of the batch is half-loaded
    assert con.execute("select count(*) from results").fetchone() == (0,)
    assert con.execute("select count(*) from requests").fetchone() == (0,)


def test_the_cache_priming_batch_answers_its_row(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = staging.stage_job(tmp_path, staging.make_job(tmp_path), [("p", "card"), ("q", "other")])
    staging.stage_batch(
        s, "msgbatch_prime", ["p"], [staging.succeeded("a1_p", '{"label":"card"}')],
        purpose="prime", part=0, created_at="2026-11-02T09:00:00Z",
    )  # fmt: skip
    staging.stage_batch(s, "msgbatch_main", ["q"], [staging.expired("a1_q")])
    _load_all(con, s)
    got = con.execute(
        "select row_id, final_state, attempts, label from row_outcomes order by row_number"
    ).fetchall()
    assert got == [("p", "succeeded", 1, "card"), ("q", "pending", 1, None)]
    purposes = con.execute("select batch_id, purpose from batches order by batch_id").fetchall()
    assert purposes == [("msgbatch_main", "main"), ("msgbatch_prime", "prime")]


class _EchoJob(JobBase):
    kind: Literal["echo"] = "echo"


class _Echo(Kind):
    """A kind with a table of its own, filled per batch and cleaned of forgotten batches."""

    name, config = "echo", _EchoJob

    def load_batch(self, con: duckdb.DuckDBPyConnection, job: JobBase, batch_id: str) -> None:
        con.execute("create table if not exists echoes (job_name varchar, batch_id varchar)")
        con.execute("delete from echoes where batch_id = ?", [batch_id])
        con.execute("insert into echoes values (?, ?)", [job.name, batch_id])

    def delete_stale(
        self, con: duckdb.DuckDBPyConnection, job: JobBase, batch_ids: list[str]
    ) -> None:
        con.execute("create table if not exists echoes (job_name varchar, batch_id varchar)")
        con.execute(
            "delete from echoes where job_name = ? and not list_contains(?, batch_id)",
            [job.name, batch_ids],
        )


def test_a_kind_lands_batches_in_its_own_tables(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KINDS, "echo", _Echo())
    job = _EchoJob(name="e", source=tmp_path / "x.csv", instructions="Say it.")
    s = staging.stage_job(tmp_path, job, [("x", None), ("y", None)])
    first = staging.stage_batch(s, "b1", ["x"], [staging.succeeded("a1_x", "free text")])
    load_job(con, s.job, s.paths, s.ledger, s)
    load_batch(con, s.job, s.paths, first)
    load_batch(con, s.job, s.paths, first)  # loaded twice: still one row
    assert con.execute("select job_name, batch_id from echoes").fetchall() == [("e", "b1")]
    assert con.execute("select output, outcome from outcomes").fetchall() == [
        ("free text", "succeeded")
    ]
    assert con.execute("select count(*) from labels").fetchone() == (0,)  # not a label job
    s.paths.ledger.unlink()  # as after a restart: the job's ledger knows no batch any more
    load_job(con, s.job, s.paths, staging.Ledger.create(s.paths.ledger), s)
    assert con.execute("select count(*) from echoes").fetchone() == (0,)


def test_summary_names_a_row_without_id_by_its_row_number(
    con: duckdb.DuckDBPyConnection, staged: staging.Staged, tmp_path: Path
) -> None:
    """A quarantined row with a null id used to crash the report (FailureRow.row_id: str)."""
    from halfrate.summary import FailureRow, Verdict, summarize

    _load_all(con, staged)
    summary = summarize(con, staged.job, tmp_path / "warehouse.duckdb")
    failures = {f.row_number: f for f in summary.failures}
    assert failures[9] == FailureRow(
        row_number=9, row_id=None, final_state="quarantined", reason="missing id", attempts=0
    )
    assert failures[8].row_id == "r_dup" and list(failures) == sorted(failures)  # source order
    assert summary.verdict is Verdict.unfinished  # r_pend and r_new are still pending
    assert summary.outcome.startswith("2 succeeded, ")
    assert "2 pending" in summary.outcome and "rerun the job to settle" in summary.outcome
