"""`halfrate run A.yaml B.yaml` (a chain) goes through the same checks as one job, every stage
before the first sends anything, and exits with its worst stage's code. Prefect never starts:
`run_chain` and `run_flow` are replaced."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from cli import commands
from halfrate.settings import get_settings
from halfrate.summary import ChainSummary
from tests.cli.test_answers_cli import cli, outcome, write_job

JUDGE = {
    "name": "grades",
    "kind": "judge",
    "source": "job:tickets",
    "instructions": "Grade the label.",
    "criteria": {"fit": "Does the label fit the ticket?"},
    "scale": [1, 5],
    "response_column": "label",
}


def judge_file(folder: Path, **keys: Any) -> Path:
    path = folder / "judge.yaml"
    path.write_text(yaml.safe_dump(JUDGE | keys, sort_keys=False))
    return path


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    get_settings.cache_clear()
    monkeypatch.setattr("halfrate.preflight.check_key", lambda gateway: None)


@pytest.fixture
def chained(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """`run_chain` records its calls and returns a chain whose second stage left rows out."""
    calls: list[tuple[Any, ...]] = []

    def run_chain(files: list[str], restart: bool, debug: bool = False) -> ChainSummary:
        calls.append((files, restart))
        grades = outcome({"succeeded": 1, "failed": 1}).model_copy(update={"job_name": "grades"})
        return ChainSummary.of([outcome({"succeeded": 2}), grades])

    monkeypatch.setattr(commands, "run_chain", run_chain)
    return calls


def test_a_chain_runs_when_every_stage_passes_and_exits_with_its_worst_stage(
    tmp_path: Path, with_key: None, chained: list[tuple[Any, ...]]
) -> None:
    files = [str(write_job(tmp_path)), str(judge_file(tmp_path))]
    code, out = cli("run", *files)
    assert code == 3, out  # a row of the second stage did not succeed
    assert chained == [(files, False)]
    assert "1 succeeded, 1 failed: see the failures table" in out and "total" in out


@pytest.mark.parametrize(
    ("first", "second", "says"),
    [
        ({}, {"source": "job:tikets"}, "source job:tikets names no earlier job of this chain"),
        ({}, {"scale": [5, 1]}, "scale: [5, 1]: the minimum must be below"),
        ({"source": "nope.csv"}, {}, "nope.csv: source not found"),
        ({"text_column": "body"}, {}, "'body' not found; available columns"),
    ],
    ids=["unknown-upstream", "bad-second-stage", "missing-source", "missing-column"],
)
def test_every_stage_is_checked_before_the_first_sends_anything(
    tmp_path: Path,
    with_key: None,
    chained: list[tuple[Any, ...]],
    first: dict[str, Any],
    second: dict[str, Any],
    says: str,
) -> None:
    files = [str(write_job(tmp_path, **first)), str(judge_file(tmp_path, **second))]
    code, out = cli("run", *files)
    assert code == 2 and out.startswith("error: ") and says in out.replace("\n", " "), out
    assert chained == [] and not (tmp_path / "jobs").exists()


def test_a_job_source_alone_must_name_a_job_that_ran(tmp_path: Path, with_key: None) -> None:
    code, out = cli("run", str(judge_file(tmp_path)))
    assert code == 2, out
    assert "source job:tickets names no job in" in out and "halfrate run UPSTREAM.yaml" in out


def test_set_overrides_one_job_only(tmp_path: Path, chained: list[tuple[Any, ...]]) -> None:
    files = [str(write_job(tmp_path)), str(judge_file(tmp_path))]
    code, out = cli("run", *files, "--set", "model=claude-haiku-4-5")
    assert code == 2 and "--set overrides one job" in out and chained == []
