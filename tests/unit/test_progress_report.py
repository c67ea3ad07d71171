"""Progress in requests for the progress artifact, without Prefect (halfrate/progress_report.py)."""

from datetime import UTC, datetime, timedelta

from halfrate.ledger import BatchRecord, BatchStatus, RequestFile
from halfrate.progress_report import attempt_progress, headline, render_progress

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CREATED = "2026-05-01T10:00:00Z"
EXPIRES = "2026-05-02T10:00:00Z"


def record(
    path: str,
    n: int,
    purpose: str = "main",
    status: BatchStatus | None = BatchStatus.submitted,
    counts: dict[str, int] | None = None,
    attempt: int = 1,
    parent: str | None = None,
    mode: str = "batch",
) -> BatchRecord:
    sent = status not in (None, BatchStatus.split_up, BatchStatus.failed)
    return BatchRecord(
        file=RequestFile(path, attempt, 1, purpose, n, 100 * n, "sha", parent),
        status=status,
        intent_at=None,
        batch_id=f"msgbatch_{path}" if sent else None,
        created_at=CREATED if sent else None,
        expires_at=EXPIRES if sent else None,
        ended_at=None,
        processing_status=None,
        request_counts=counts if counts is not None else ({"processing": n} if sent else None),
        note=None,
        mode=mode,
    )


def test_the_priming_batch_counts_as_one_request_not_half_the_work() -> None:
    records = [
        record("prime", 1, "prime", BatchStatus.loaded, {"succeeded": 1}),
        record("main-1", 692),
    ]
    p = attempt_progress("intents", records, 1, "main")
    assert (p.requests, p.ended, p.processing, p.not_sent) == (693, 1, 692, 0)
    assert round(p.percent, 2) == 0.14
    assert (p.batches, p.batches_ended) == (2, 1)


def test_phases_not_sent_yet_are_counted_as_not_sent() -> None:
    records = [
        record("prime", 1, "prime", BatchStatus.submitted, {"processing": 1}),
        record("pilot-1", 40, "pilot", None),
        record("main-1", 652, "main", None),
    ]
    whole = attempt_progress("trivia", records, 1, "prime")
    assert (whole.requests, whole.processing, whole.not_sent) == (693, 1, 692)
    pilot_only = attempt_progress("trivia", records, 1, "prime", ["prime", "pilot"])
    assert (pilot_only.requests, pilot_only.not_sent) == (41, 40)


def test_split_files_count_through_their_halves_and_remainders_are_not_counted_twice() -> None:
    records = [
        record("big", 10, status=BatchStatus.split_up),
        record("big-a", 5, parent="big", status=BatchStatus.loaded, counts={"succeeded": 5}),
        record("big-b", 5, parent="big", counts={"processing": 5}),
        record(
            "other",
            4,
            status=BatchStatus.loaded,
            counts={"succeeded": 2, "canceled": 2},
        ),
        # what the deadline left of `other`, sent in real time: its batch counted it already
        record("other.rt", 2, parent="other", status=BatchStatus.loaded, mode="realtime"),
        record("too-big", 1, status=BatchStatus.failed),
        record("old", 9, attempt=2),  # another attempt
    ]
    p = attempt_progress("j", records, 1, "main")
    assert p.requests == 5 + 5 + 4 + 1
    assert (p.succeeded, p.canceled, p.errored, p.processing) == (7, 2, 1, 5)
    assert p.ended == 10 and p.batches == 3 and p.batches_ended == 2


def test_the_artifact_reads_as_requests_with_a_table() -> None:
    records = [
        record("main-1", 300, status=BatchStatus.loaded, counts={"succeeded": 288, "errored": 12}),
        record("main-2", 400),
    ]
    progress = attempt_progress("tickets", records, 1, "main")
    assert headline(progress, NOW) == (
        "300 of 700 requests ended (43%) · main phase · first attempt · as of 12:00 UTC"
    )
    lines = render_progress(progress, NOW).splitlines()
    assert lines[0] == "**tickets**: " + headline(progress, NOW)
    assert "| succeeded | errored | expired | canceled | processing | not sent yet |" in lines
    assert "| 288 | 12 | 0 | 0 | 400 | 0 |" in lines
    assert lines[-1] == "batches ended: 1 of 2 · waited 2 h · expires in 22 h"
    again = attempt_progress("tickets", [record("r", 12, attempt=2)], 2, "main")
    assert headline(again, NOW + timedelta(hours=1)).startswith(
        "0 of 12 requests ended (0%) · main phase · attempt 2 · as of 13:00 UTC"
    )
