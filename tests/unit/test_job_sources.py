"""Job sources refused before anything is sent: unknown, unfinished, or not one row per row."""

from pathlib import Path

import pytest

from halfrate.chain import upstream_fingerprint
from halfrate.config import parse_job
from halfrate.extract import ExtractError, extract_rows
from halfrate.settings import Settings
from halfrate.workspace import open_job

JUDGE = {
    "kind": "judge",
    "criteria": {"accuracy": "Is it right?"},
    "scale": [1, 5],
    "response_column": "answer",
}


def settings(tmp_path: Path) -> Settings:
    return Settings(workdir=tmp_path / "jobs", warehouse=tmp_path / "w.duckdb")


def test_an_unknown_upstream_is_named_with_the_jobs_there_are(tmp_path: Path) -> None:
    s = settings(tmp_path)
    open_job(s.workdir, parse_job({"name": "answers", "source": "a.csv", **JUDGE}))
    with pytest.raises(ExtractError, match=r"source job:answr: no job named 'answr' .*answers"):
        upstream_fingerprint("answr", s)


def test_an_upstream_that_never_ran_is_unfinished(tmp_path: Path) -> None:
    s = settings(tmp_path)
    (tmp_path / "a.csv").write_text("id,answer\n1,yes\n")
    upstream = parse_job({"name": "answers", "kind": "label", "source": str(tmp_path / "a.csv"),
                          "labels": ["a", "b"], "instructions": "x", "text_column": "answer"})  # fmt: skip
    open_job(s.workdir, upstream)
    job = parse_job({"name": "grade", "source": "job:answers", **JUDGE})
    with pytest.raises(ExtractError, match="that job is not finished: it has not extracted"):
        extract_rows(job, open_job(s.workdir, job), s)
    assert not (s.workdir / "grade" / "extract" / "rows.parquet").exists()


def test_a_judge_job_cannot_be_a_source(tmp_path: Path) -> None:
    s = settings(tmp_path)
    open_job(s.workdir, parse_job({"name": "graded", "source": "a.csv", **JUDGE}))
    with pytest.raises(ExtractError, match="a judge job has several output rows per source"):
        upstream_fingerprint("graded", s)
