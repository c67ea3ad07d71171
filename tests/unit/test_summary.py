"""A job's verdict and its one-line outcome (the run's state message and the CLI's exit code)."""

from typing import Any

import pytest

from halfrate.kinds.base import SummaryDetail
from halfrate.summary import JobSummary, Verdict, render_markdown


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


def test_partial_failure_is_stated_in_words_and_links_the_failures_table() -> None:
    s = summary({"succeeded": 288, "exhausted": 10, "quarantined": 2}, rows=300)
    url = "http://127.0.0.1:4200/v2/artifacts/artifact/1234"
    text = render_markdown(s, url)
    assert (
        "**Outcome:** 12 of 300 rows did not succeed (10 exhausted, 2 quarantined); 288 "
        "succeeded. Each row that did not succeed is listed with its reason in "
        f"[the failures table]({url})."
    ) in text
    assert "the failures table." in render_markdown(s)  # no UI URL known: no link
    done = render_markdown(summary({"succeeded": 300}, rows=300))
    assert "**Outcome:** 300 succeeded" in done and "did not succeed" not in done


def test_a_run_on_the_emulator_says_so_next_to_its_accuracy() -> None:
    accuracy = SummaryDetail(
        name="accuracy", title="Accuracy against gold", text="71.3% (494 of 693)", value=0.713
    )
    s = summary({"succeeded": 693}, rows=693, details=[accuracy], on_emulator=True)
    lines = render_markdown(s).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("**Accuracy against gold:**"))
    assert lines[at + 1].startswith("**Ran on the built-in emulator**, not the API")
    assert "accuracy figures only show that the plumbing works" in lines[at + 1]
    real = render_markdown(s.model_copy(update={"on_emulator": False}))
    assert "emulator" not in real
