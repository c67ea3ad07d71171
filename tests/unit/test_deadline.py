"""`deadline:` and `mode:` in job files, the deadline's resolution, and queue holds."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from halfrate.backpressure import QueueFull, SubmitGate, hold, hold_released, release
from halfrate.config import JobConfigError, parse_job, resolve_job
from halfrate.deadline import FIRST_SUBMIT_KEY, parse_deadline
from halfrate.finish import deadline_of, mark_first_submit, past_deadline, realtime_due
from halfrate.kinds.base import SendMode
from halfrate.ledger import Ledger, RequestFile

BASE = {"name": "t", "source": "a.csv", "instructions": "Label it.", "labels": ["a", "b"]}


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
        (" 1H 5M ", timedelta(hours=1, minutes=5)),
    ],
)
def test_a_duration_counts_from_the_first_submission(text: str, after: timedelta) -> None:
    deadline = parse_deadline(text)
    first = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert deadline.resolve(None) is None  # nothing submitted yet: no deadline yet
    assert deadline.resolve(first) == first + after


def test_an_iso_time_is_absolute_and_needs_its_offset() -> None:
    deadline = parse_deadline("2026-12-01T07:00:00+01:00")
    assert deadline.resolve(None) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert parse_deadline("2026-12-01T06:00Z").at == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "neither a duration nor an ISO time"),
        ("0h", "longer than zero"),
        ("2026-12-01T07:00", "has no UTC offset: add one"),
        ("-3h", "neither a duration"),
    ],
)
def test_a_bad_deadline_is_refused_naming_the_key_and_the_fix(value: str, message: str) -> None:
    with pytest.raises(JobConfigError, match=rf"deadline: .*{message}"):
        parse_job(BASE | {"deadline": value})


def test_yaml_times_and_dates_in_a_job_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(BASE) + "deadline: 2026-12-01T07:00:00+01:00\n")
    assert resolve_job(path).deadline == "2026-12-01T07:00:00+01:00"  # YAML made it a datetime
    path.write_text(yaml.safe_dump(BASE) + "deadline: 2026-12-01\n")
    with pytest.raises(JobConfigError, match="a date without a time"):
        resolve_job(path)


def test_mode_and_deadline_do_not_change_the_fingerprint() -> None:
    plain = parse_job(BASE)
    urgent = parse_job(BASE | {"mode": "realtime", "deadline": "2h"})
    assert plain.mode is SendMode.batch and urgent.mode is SendMode.realtime
    assert plain.fingerprint() == urgent.fingerprint()  # a rerun may add a deadline and resume
    with pytest.raises(JobConfigError, match="mode: Input should be 'batch' or 'realtime'"):
        parse_job(BASE | {"mode": "fast"})


def test_the_deadline_resolves_from_the_ledger_and_survives_a_resume(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "ledger.sqlite")
    job = parse_job(BASE | {"deadline": "2h"})
    assert deadline_of(job, ledger) is None and not realtime_due(job, ledger)
    first = datetime.now(UTC) - timedelta(hours=3)
    ledger.set_meta(FIRST_SUBMIT_KEY, first.isoformat())
    resumed = Ledger(tmp_path / "ledger.sqlite")  # another process, later
    assert deadline_of(job, resumed) == first + timedelta(hours=2)
    assert past_deadline(job, resumed) and realtime_due(job, resumed)
    assert not past_deadline(parse_job(BASE | {"deadline": "4h"}), resumed)
    assert realtime_due(parse_job(BASE | {"mode": "realtime"}), resumed)


def _flying(ledger: Ledger, path: str, n: int, batch_id: str) -> None:
    ledger.add_request_files([RequestFile(path, 1, 1, "main", n, 100, "x")])
    ledger.record_intent(path)
    ledger.record_batch(
        path,
        {
            "id": batch_id,
            "created_at": "2026-11-02T10:00:00Z",
            "expires_at": "2026-11-03T10:00:00Z",
            "processing_status": "in_progress",
            "request_counts": {"processing": n},
        },
    )


def test_a_hold_is_released_when_a_batch_ends_or_its_retry_after_passes(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "ledger.sqlite")
    _flying(ledger, "a.jsonl", 20, "msgbatch_a")
    _flying(ledger, "b.jsonl", 20, "msgbatch_b")
    gate = SubmitGate(ledger, max_queued=50)
    gate.check_room(10)  # 40 + 10 fit
    with pytest.raises(QueueFull, match="40 requests in flight \\+ 20 would exceed"):
        gate.check_room(20)

    held = hold(ledger, QueueFull("own cap"), base_backoff=1.0)
    assert held.in_flight == 40 and held.until is None and not hold_released(ledger)
    ledger.update_progress(
        {"id": "msgbatch_a", "processing_status": "ended", "request_counts": {"succeeded": 20}}
    )
    assert hold_released(ledger)  # a batch ended: room again

    refused = hold(ledger, QueueFull("429", retry_after=30.0, refused=True), base_backoff=1.0)
    assert refused.until is not None and not hold_released(ledger)
    later = datetime.now(UTC) + timedelta(seconds=31)
    assert hold_released(ledger, now=later)
    again = hold(ledger, QueueFull("429", retry_after=0.0, refused=True), base_backoff=10.0)
    assert again.until is not None  # the second 429 in a row waits twice the backoff
    wait = datetime.fromisoformat(again.until) - datetime.now(UTC)
    assert timedelta(seconds=15) < wait <= timedelta(seconds=20)
    release(ledger, created=True)
    assert hold_released(ledger)


def test_a_job_with_nothing_in_flight_may_always_send(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "ledger.sqlite")
    SubmitGate(ledger, max_queued=5).check_room(100)  # a file over the cap goes alone


def test_a_job_that_sent_batches_before_it_had_a_deadline_counts_from_its_first_create(
    tmp_path: Path,
) -> None:
    ledger = Ledger.create(tmp_path / "ledger.sqlite")
    _flying(ledger, "a.jsonl", 20, "msgbatch_a")  # sent by an earlier run, without a deadline
    first = ledger.record("a.jsonl").intent_at
    mark_first_submit(ledger)
    mark_first_submit(ledger)  # once
    assert ledger.get_meta(FIRST_SUBMIT_KEY) == first
