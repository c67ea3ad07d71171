"""The judge kind: its config errors, its messages and output schema, and its output checks."""

import importlib
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest

from halfrate.build import build_requests, request_for
from halfrate.config import JobConfigError, parse_job, resolve_job
from halfrate.extract import ExtractError, extract_rows
from halfrate.kinds import kind_of
from halfrate.kinds.judge import JUDGE, JudgeJob
from halfrate.ledger import Ledger
from halfrate.settings import Settings
from halfrate.workspace import open_job

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
staging = importlib.import_module("staging")

CRITERIA = {"accuracy": "Is the answer correct?", "clarity": "Is it easy to follow?"}
BASE = {"name": "grade", "kind": "judge", "source": "answers.csv", "criteria": CRITERIA}
SOURCE = (
    "id,question,answer,other,reference\n"
    "q1,What is 2+2?,4,five,4\n"
    "q2,Capital of France?,Paris,Lyon,Paris\n"
    "q3,Blank answer?, ,x,y\n"
)


def judge(**keys: Any) -> JudgeJob:
    job = parse_job(BASE | keys)
    assert isinstance(job, JudgeJob)
    return job


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"scale": [5, 1], "response_column": "a"}, r"scale: \[5, 1\]: the minimum must be below"),
        ({"scale": [3, 3], "response_column": "a"}, r"scale: \[3, 3\]: the minimum must be below"),
        ({"scale": [1, 500], "response_column": "a"}, "spans more than 100"),
        ({"criteria": {}, "scale": [1, 5], "response_column": "a"}, "give at least one criter"),
        ({"criteria": {"Bad Name": "x"}, "scale": [1, 5], "response_column": "a"}, "lowercase"),
        ({"criteria": {"ok": " "}, "scale": [1, 5], "response_column": "a"}, "say what it means"),
        ({"response_column": "a"}, "give either scale: \\[min, max\\] or verdicts"),
        ({"scale": [1, 5], "verdicts": ["y", "n"], "response_column": "a"}, "give either"),
        ({"verdicts": ["yes"], "response_column": "a"}, "at least two different verdicts"),
        ({"verdicts": ["y", "y"], "response_column": "a"}, "at least two different verdicts"),
        ({"scale": [1, 5]}, "response_column: name the column holding the response"),
        ({"compare": ["a", "a"]}, "name two different columns"),
        ({"compare": ["a", "b"], "scale": [1, 5]}, "remove scale, verdicts and response_column"),
        ({"scale": [1, 5], "response_column": "a", "prompt": "{a}"}, "remove text_column"),
        ({"scale": [1, 5], "response_column": "a", "labels": ["x"]}, "kind judge has no key"),
    ],
)
def test_bad_judge_jobs_are_refused_naming_the_key(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(JobConfigError, match=message):
        parse_job(BASE | keys, "grade.yaml")


def test_a_job_source_needs_only_criteria_and_scale(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text(
        "name: grade\nkind: judge\nsource: job:answers\nscale: [1, 5]\n"
        "criteria:\n  accuracy: Is the answer correct?\n"
    )
    job = resolve_job(path)
    assert isinstance(job, JudgeJob)
    assert (job.upstream, str(job.source), job.id_column) == ("answers", "job:answers", "row_id")
    assert job.judged == {"prompt": "prompt", "response": "text"}
    with pytest.raises(JobConfigError, match="job:<name> must name a job"):
        parse_job(BASE | {"source": "job:Not A Job", "scale": [1, 5]})


def test_a_judge_job_reads_back_from_its_own_dump() -> None:
    job = judge(scale=[1, 5], response_column="answer", reference_column="reference")
    again = parse_job(orjson.loads(job.model_dump_json()))
    assert again == job and again.fingerprint() == job.fingerprint()


def _built(tmp_path: Path, job: JudgeJob) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    (tmp_path / "answers.csv").write_text(SOURCE)
    job = job.model_copy(update={"source": tmp_path / "answers.csv"})
    settings = Settings(workdir=tmp_path / "jobs", warehouse=tmp_path / "w.duckdb")
    paths = open_job(settings.workdir, job)
    extracted = extract_rows(job, paths, settings)
    assert (extracted.valid_rows, extracted.quarantined_rows) == (2, 1)
    files = build_requests(job, paths, Ledger(paths.ledger), 1, paths.rows, settings, False)
    lines = [orjson.loads(line) for f in files for line in (paths.root / f.path).open("rb")]
    return pl.read_parquet(paths.quarantine), lines


def test_a_graded_row_shows_prompt_response_and_reference(tmp_path: Path) -> None:
    job = judge(
        scale=[1, 5], response_column="answer", prompt_column="question",
        reference_column="reference",
    )  # fmt: skip
    quarantine, lines = _built(tmp_path, job)
    assert quarantine["reason"].to_list() == [
        "missing text: column(s) 'answer' must not be empty or blank"
    ]
    assert [line["custom_id"] for line in lines] == ["a1_q1", "a1_q2"]
    assert lines[0] == request_for(job, "a1_q1", lines[0]["params"]["messages"][0]["content"])
    assert lines[0]["params"]["messages"][0]["content"] == (
        "<prompt>\nWhat is 2+2?\n</prompt>\n\n<response>\n4\n</response>\n\n"
        "<reference_answer>\n4\n</reference_answer>"
    )
    system = lines[0]["params"]["system"][0]["text"]
    assert "- accuracy: Is the answer correct?" in system and "from 1 (worst) to 5" in system
    schema = lines[0]["params"]["output_config"]["format"]["schema"]
    assert schema["required"] == ["accuracy", "clarity"]
    score = schema["properties"]["accuracy"]["properties"]["score"]
    assert (score["type"], score["enum"]) == ("integer", [1, 2, 3, 4, 5])


def test_pairwise_sends_each_row_in_both_orders(tmp_path: Path) -> None:
    job = judge(compare=["answer", "other"], prompt_column="question")
    _, lines = _built(tmp_path, job)
    assert [line["custom_id"] for line in lines] == ["a1ab_q1", "a1ba_q1", "a1ab_q2", "a1ba_q2"]
    ab, ba = (line["params"]["messages"][0]["content"] for line in lines[:2])
    assert "<response_a>\n4\n</response_a>\n\n<response_b>\nfive\n</response_b>" in ab
    assert "<response_a>\nfive\n</response_a>\n\n<response_b>\n4\n</response_b>" in ba
    winner = lines[0]["params"]["output_config"]["format"]["schema"]["properties"]["clarity"]
    assert winner["properties"]["winner"]["enum"] == ["A", "B", "tie"]
    assert kind_of(job).request_keys(job) == ("ab", "ba")


def test_a_missing_judged_column_names_its_key(tmp_path: Path) -> None:
    job = judge(scale=[1, 5], response_column="reply", reference_column="gold")
    with pytest.raises(ExtractError, match=r"'reply', 'gold' not found; .* Set id_column / resp"):
        _built(tmp_path, job)


def _checked(tmp_path: Path, job: JudgeJob, outputs: dict[str, Any]) -> dict[str, Any]:
    lines = [
        staging.succeeded(cid, out if isinstance(out, str) else orjson.dumps(out).decode())
        for cid, out in outputs.items()
    ]
    raw = staging.write_jsonl(tmp_path / "r.jsonl", lines)
    staging.parse_results(raw, tmp_path / "r.parquet", job, "b")
    rows = duckdb.execute(
        "select custom_id, invalid_reason from read_parquet(?)", [str(tmp_path / "r.parquet")]
    ).fetchall()
    return dict(rows)


def test_judgements_are_checked_before_they_count(tmp_path: Path) -> None:
    job = judge(scale=[1, 5], response_column="answer")
    ok = {"rationale": "Right.", "score": 4}
    got = _checked(
        tmp_path,
        job,
        {
            "a1_ok": {"accuracy": ok, "clarity": ok},
            "a1_high": {"accuracy": ok | {"score": 6}, "clarity": ok},
            "a1_float": {"accuracy": ok | {"score": 4.5}, "clarity": ok},
            "a1_missing": {"accuracy": ok},
            "a1_noreason": {"accuracy": {"score": 3}, "clarity": ok},
            "a1_extra": {"accuracy": ok, "clarity": ok, "style": ok},
        },
    )
    assert got == {
        "a1_ok": None,
        "a1_high": "accuracy.score 6 is not one of [1, 2, 3, 4, 5]",
        "a1_float": "accuracy.score is a number, expected an integer",
        "a1_missing": "no 'clarity' field in the output",
        "a1_noreason": "no 'accuracy.rationale' field in the output",
        "a1_extra": "unexpected key 'style' in the output",
    }
    verdicts = judge(verdicts=["correct", "wrong"], response_column="answer")
    bad = {"rationale": "?", "verdict": "maybe"}
    assert _checked(tmp_path, verdicts, {"a1_v": {"accuracy": bad, "clarity": bad}}) == {
        "a1_v": "accuracy.verdict 'maybe' is not one of ['correct', 'wrong']"
    }


def test_the_judge_is_the_registered_plug_in() -> None:
    assert kind_of(judge(scale=[1, 5], response_column="a")) is JUDGE


def test_pairwise_rows_over_the_batch_limit_are_quarantined_once(tmp_path: Path) -> None:
    """Each of a row's requests is measured as it will be sent; a row whose largest request
    alone exceeds HALFRATE_MAX_BATCH_BYTES is quarantined (both orders with it)."""
    long = "word " * 1000
    (tmp_path / "answers.csv").write_text(SOURCE.replace("Lyon", long))
    job = judge(compare=["answer", "other"], prompt_column="question")
    job = job.model_copy(update={"source": tmp_path / "answers.csv"})
    settings = Settings(
        workdir=tmp_path / "jobs", warehouse=tmp_path / "w.duckdb", max_batch_bytes=5_000
    )
    paths = open_job(settings.workdir, job)
    extracted = extract_rows(job, paths, settings)
    assert extracted.reasons == {"request too large": 1, "missing text": 1}
    rows = pl.read_parquet(paths.rows)
    assert rows.select("row_id", "request").rows() == [("q1", "ab"), ("q1", "ba")]
    quarantine = pl.read_parquet(paths.quarantine).filter(pl.col("row_id") == "q2")
    size = int(quarantine["reason"][0].split(": ")[1].split(" bytes")[0].replace(",", ""))
    alone = tmp_path / "alone.parquet"  # q2's two requests under the default limit
    other = open_job(tmp_path / "other", job)
    extract_rows(job, other, Settings(workdir=tmp_path / "other"))
    pl.read_parquet(other.rows).filter(pl.col("row_id") == "q2").write_parquet(alone)
    one_each = Settings(max_requests_per_batch=1)
    files = build_requests(job, other, Ledger(other.ledger), 1, alone, one_each, False)
    assert len(files) == 2
    assert size == max(f.body_bytes for f in files) + len("a10xxxx_") - len("a1ab_")
