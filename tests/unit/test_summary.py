"""A job's verdict and its one-line outcome (the run's state message and the CLI's exit code)."""

from typing import Any

import pytest

from halfrate.summary import JobSummary, Verdict


def summary(states: dict[str, int], **fields: Any) -> JobSummary:
    empty = JobSummary.empty("tickets", "label", "claude-sonnet-5", "w.duckdb")
    not_succeeded = sum(n for s, n in states.items() if s != "succeeded")
    return empty.model_copy(
        update={"final_states": states, "rows_not_succeeded": not_succeeded, **fields}
    )


@pytest.mark.parametrize(
    ("states", "staged", "verdict", "outcome"),
    [
        ({"succeeded": 693}, 0, Verdict.succeeded, "693 succeeded"),
        (
            {"succeeded": 45, "exhausted": 10, "quarantined": 7},
            0,
            Verdict.rows_not_succeeded,
            "45 succeeded, 10 exhausted, 7 quarantined: see the failures table",
        ),
        (
            {"succeeded": 1_200, "failed": 1},
            0,
            Verdict.rows_not_succeeded,
            "1,200 succeeded, 1 failed: see the failures table",
        ),
        (
            {"succeeded": 40, "pending": 20},
            2,
            Verdict.unfinished,
            "40 succeeded, 20 pending; 2 batch(es) staged, not loaded (warehouse busy): run "
            "`halfrate load tickets`",
        ),
        (
            {"succeeded": 40, "pending": 2},
            0,
            Verdict.unfinished,
            "40 succeeded, 2 pending: rerun the job to settle the pending rows",
        ),
        ({}, 1, Verdict.unfinished, "no rows loaded; 1 batch(es) staged, not loaded"),
    ],
)
def test_verdict_and_outcome(
    states: dict[str, int], staged: int, verdict: Verdict, outcome: str
) -> None:
    s = summary(states, staged_not_loaded=staged)
    assert s.verdict is verdict
    assert s.outcome.startswith(outcome)
