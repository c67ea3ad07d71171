"""Judge jobs through the real extract, build, retry plan and loads: judgements, judge_scores,
and row_outcomes giving one final state per row when a row sends two requests (pairwise)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import staging

from halfrate.build import build_requests
from halfrate.config import parse_job
from halfrate.extract import extract_rows
from halfrate.kinds.judge import JudgeJob
from halfrate.ledger import BatchRecord, BatchStatus, Ledger
from halfrate.load import load_batch, load_job
from halfrate.retry import plan_retry
from halfrate.settings import Settings
from halfrate.workspace import open_job

SOURCE = "id,question,answer,other\n" + "".join(
    f"q{i},Question {i}?,answer {i},other {i}\n" for i in range(1, 6)
)
KEYS = {
    "judgements": ["job_name", "row_id", "criterion"],
    "outcomes": ["job_name", "row_id", "request"],
    "requests": ["batch_id", "custom_id"],
    "job_rows": ["job_name", "row_id"],
    "row_outcomes": ["job_name", "row_number"],
    "judge_scores": ["job_name", "criterion"],
}
Responder = Callable[[str], dict[str, Any]]
"""custom_id -> the result line the fake API answers with."""


def _stage(tmp_path: Path, **keys: Any) -> staging.Staged:
    (tmp_path / "answers.csv").write_text(SOURCE)
    job = parse_job(
        {
            "name": "grade",
            "kind": "judge",
            "source": str(tmp_path / "answers.csv"),
            "criteria": {"accuracy": "Is it right?", "clarity": "Is it clear?"},
            "prompt_column": "question",
            "max_attempts": 2,
            **keys,
        }
    )
    settings = Settings(workdir=tmp_path / "jobs", warehouse=tmp_path / "w.duckdb")
    paths = open_job(settings.workdir, job)
    extracted = extract_rows(job, paths, settings)
    return staging.Staged(job, paths, Ledger(paths.ledger), extracted.valid_rows, 0)


def _answer(s: staging.Staged, attempt: int, respond: Responder) -> list[BatchRecord]:
    """Build the attempt's files as a run would and record each as an ended, downloaded batch."""
    settings = Settings(workdir=s.paths.root.parent)
    rows = s.paths.rows if attempt == 1 else plan_retry(s.paths, s.ledger, attempt)
    assert rows is not None
    records = []
    for f in build_requests(s.job, s.paths, s.ledger, attempt, rows, settings, prime=False):
        ids = [orjson.loads(line)["custom_id"] for line in (s.paths.root / f.path).open("rb")]
        batch_id = f"msgbatch_a{attempt}p{f.part}"
        results = [respond(custom_id) for custom_id in ids]
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for line in results:
            counts[line["result"]["type"]] += 1
        s.ledger.record_intent(f.path)
        at = f"2026-11-02T1{attempt}:00:00Z"
        ended = {"id": batch_id, "processing_status": "ended", "request_counts": counts}
        s.ledger.record_batch(f.path, ended | {"created_at": at, "expires_at": at})
        s.ledger.set_status(batch_id, BatchStatus.downloaded)
        staging.write_jsonl(s.paths.results_file(batch_id), results)
        records.append(s.ledger.record(f.path))
    return records


def _load(con: duckdb.DuckDBPyConnection, s: staging.Staged, records: list[BatchRecord]) -> None:
    load_job(con, s.job, s.paths, s.ledger, s)
    for record in records:
        load_batch(con, s.job, s.paths, record)


def _graded(scores: dict[str, int]) -> Responder:
    def respond(custom_id: str) -> dict[str, Any]:
        row = custom_id.split("_", 1)[1]
        if row == "q5":
            return staging.errored(custom_id, "invalid_request_error", "prompt is too long")
        score = scores.get(row, 3)
        output = {
            c: {"rationale": f"{c} of {row}", "score": score} for c in ("accuracy", "clarity")
        }
        return staging.succeeded(custom_id, orjson.dumps(output).decode())

    return respond


def test_graded_rows_land_one_row_per_criterion_and_load_idempotently(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = _stage(tmp_path, response_column="answer", scale=[1, 5])
    records = _answer(s, 1, _graded({"q1": 5, "q2": 1, "q3": 5, "q4": 6}))  # 6: out of scale
    _load(con, s, records)
    _load(con, s, records)  # twice: nothing changes
    assert con.execute(
        "select row_id, criterion, score, verdict, winner, rationale from judgements"
        " where criterion = 'accuracy' order by row_id"
    ).fetchall() == [
        ("q1", "accuracy", 5, None, None, "accuracy of q1"),
        ("q2", "accuracy", 1, None, None, "accuracy of q2"),
        ("q3", "accuracy", 5, None, None, "accuracy of q3"),
    ]
    assert con.execute("select count(*) from judgements").fetchone() == (6,)
    scores = con.execute(
        "select criterion, n, mean, min, max, distribution, consistency from judge_scores"
        " order by criterion"
    ).fetchall()
    assert scores[0] == ("accuracy", 3, pytest.approx(11 / 3), 1, 5, {"1": 1, "5": 2}, None)
    states = con.execute(
        "select row_id, final_state, reason from row_outcomes order by row_number"
    ).fetchall()
    assert states[3:] == [
        ("q4", "pending", "accuracy.score 6 is not one of [1, 2, 3, 4, 5]"),
        ("q5", "failed", "invalid_request_error: prompt is too long"),
    ]
    # the invalid judgement is re-asked; its second answer lands
    _load(con, s, _answer(s, 2, _graded({"q4": 2})))
    assert con.execute(
        "select score from judgements where row_id = 'q4' order by criterion"
    ).fetchall() == [(2,), (2,)]
    assert con.execute("select n from judge_scores order by criterion").fetchall() == [(4,), (4,)]


def _pairwise(winners: dict[str, str]) -> Responder:
    """`winners[custom_id prefix + row]`: what the judge names (A, B, tie, or bad)."""

    def respond(custom_id: str) -> dict[str, Any]:
        said = winners.get(custom_id, "A")
        if said == "expired":
            return staging.expired(custom_id)
        output = {c: {"rationale": custom_id, "winner": said} for c in ("accuracy", "clarity")}
        return staging.succeeded(custom_id, orjson.dumps(output).decode())

    return respond


def test_pairwise_counts_a_win_only_when_both_orders_agree(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = _stage(tmp_path, compare=["answer", "other"])
    assert isinstance(s.job, JudgeJob) and s.valid_rows == 5
    first = _pairwise(
        {
            "a1ab_q1": "A", "a1ba_q1": "B",  # a both times: a wins
            "a1ab_q2": "B", "a1ba_q2": "A",  # b both times
            "a1ab_q3": "A", "a1ba_q3": "A",  # the first position both times: inconsistent
            "a1ab_q4": "tie", "a1ba_q4": "tie",
            "a1ab_q5": "A", "a1ba_q5": "expired",  # one order still to come
        }
    )  # fmt: skip
    records = _answer(s, 1, first)
    _load(con, s, records)
    _load(con, s, records)
    judged = (
        "select row_id, winner, winner_ab, winner_ba, rationale, rationale_ba from judgements"
        " where criterion = 'clarity' order by row_id"
    )
    assert con.execute(judged).fetchall() == [
        ("q1", "a", "a", "a", "a1ab_q1", "a1ba_q1"),
        ("q2", "b", "b", "b", "a1ab_q2", "a1ba_q2"),
        ("q3", "inconsistent", "a", "b", "a1ab_q3", "a1ba_q3"),
        ("q4", "tie", "tie", "tie", "a1ab_q4", "a1ba_q4"),
    ]
    states = "select row_id, final_state, reason, custom_id from row_outcomes order by row_number"
    assert con.execute(states).fetchall()[3:] == [
        ("q4", "succeeded", None, "a1ab_q4"),
        ("q5", "pending", "ba: expired", "a1ba_q5"),
    ]
    # the retry resends only the expired order of q5, and the row is judged once it is back
    retry = _answer(s, 2, _pairwise({"a2ba_q5": "B"}))
    assert [r.file.n_requests for r in retry] == [1]
    _load(con, s, retry)
    assert con.execute(judged).fetchall()[4] == ("q5", "a", "a", "a", "a1ab_q5", "a2ba_q5")
    assert con.execute(
        "select final_state, count(*) from row_outcomes group by all"
    ).fetchall() == [("succeeded", 5)]
    assert con.execute(
        "select job_name, row_id, request, attempt from outcomes where row_id = 'q5' order by all"
    ).fetchall() == [("grade", "q5", "ab", 1), ("grade", "q5", "ba", 2)]
    scores = con.execute(
        "select n, mean, distribution, consistency from judge_scores where criterion = 'clarity'"
    ).fetchone()
    assert scores == (5, None, {"a": 2, "b": 1, "inconsistent": 1, "tie": 1}, 0.8)
    for table, key in KEYS.items():
        total, distinct = con.execute(
            f"select count(*), count(distinct ({', '.join(key)})) from {table}"
        ).fetchone() or (0, 0)
        assert total == distinct > 0, table


def test_a_pairwise_order_that_never_answers_validly_ends_the_row(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    s = _stage(tmp_path, compare=["answer", "other"])
    bad = _pairwise({f"a{n}ab_q2": "C" for n in (1, 2)})
    _load(con, s, _answer(s, 1, bad))
    _load(con, s, _answer(s, 2, bad))
    assert con.execute(
        "select row_id, final_state, reason, attempts from row_outcomes where row_id = 'q2'"
    ).fetchall() == [("q2", "invalid_output", "ab: accuracy.winner 'C' is not one of "
                      "['A', 'B', 'tie']", 2)]  # fmt: skip
    assert con.execute("select count(*) from judgements where row_id = 'q2'").fetchone() == (0,)
    assert con.execute("select count(distinct row_id) from judgements").fetchone() == (4,)
