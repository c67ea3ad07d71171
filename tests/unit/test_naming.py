"""Run and task-run names for the Prefect UI, without Prefect (halfrate/naming.py)."""

from pathlib import Path

import pytest

from halfrate.naming import (
    chain_run_name,
    fallback_name,
    job_identity,
    job_run_name,
    pilot_run_name,
    step_name,
)

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def test_flow_runs_are_named_after_their_job_and_kind() -> None:
    assert job_run_name("licence-categories", "label") == "licence-categories · label"
    assert pilot_run_name("trivia-answers") == "trivia-answers · pilot"
    assert chain_run_name(["trivia-answers", "trivia-judge"]) == (
        "trivia-answers → trivia-judge · chain"
    )


@pytest.mark.parametrize(
    ("step", "parameters", "name"),
    [
        ("submit", {"purpose": "prime", "attempt": 1}, "submit · prime"),
        ("submit", {"purpose": "main", "attempt": 2}, "submit · main · attempt 2"),
        ("await-completion", {"attempt": 1, "purpose": "main"}, "await-completion · main"),
        ("download", {"attempt": 1, "purpose": "pilot"}, "download · pilot"),
        ("build-requests", {"attempt": 2}, "build-requests · attempt 2"),
        ("build-requests", {"attempt": 1}, "build-requests"),
        ("load", {"attempt": 3, "purpose": None}, "load · attempt 3"),
    ],
)
def test_task_runs_say_their_step_phase_and_attempt(
    step: str, parameters: dict[str, object], name: str
) -> None:
    assert step_name(step, parameters) == name


def test_the_job_a_run_is_for_comes_from_its_file_and_overrides() -> None:
    job_file = str(SAMPLES / "intents.yaml")
    assert job_identity({"job_file": job_file}) == ("intents-demo", "label")
    overridden = {"job_file": job_file, "job": {"name": "intents-nightly"}}
    assert job_identity(overridden) == ("intents-nightly", "label")


@pytest.mark.parametrize(
    "parameters",
    [
        {"job_file": "no/such/job.yaml"},
        {"job_file": str(SAMPLES / "intents.yaml"), "job": {"max_attempts": "many"}},
        {"job": {"kind": "nope"}},
        {},
    ],
)
def test_a_job_that_does_not_resolve_keeps_a_plain_name(parameters: dict[str, object]) -> None:
    assert job_identity(parameters) is None  # the run's first task says what is wrong
    job_file = parameters.get("job_file")
    expected = f"{Path(str(job_file)).stem} · batch-job" if job_file else "batch-job"
    assert fallback_name("batch-job", parameters) == expected
