"""The await sensor's pacing and its log lines, without Prefect (halfrate/waiting.py)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from halfrate.progress import Progress
from halfrate.settings import Settings
from halfrate.waiting import (
    PollSchedule,
    check_failed_line,
    format_duration,
    nap_before_deadline,
    poll,
    settled_line,
    waiting_line,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def progress(**fields: Any) -> Progress:
    values: dict[str, Any] = {
        "batches_total": 1,
        "batches_ended": 0,
        "processing": 39,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
        "earliest_expires_at": NOW + timedelta(hours=23, minutes=10),
        "oldest_created_at": NOW - timedelta(minutes=50),
        "all_ended": False,
    }
    return Progress(**(values | fields))


def test_default_schedule_doubles_from_30_s_to_15_min_and_covers_the_wait() -> None:
    schedule = PollSchedule.of(Settings(_env_file=None))  # type: ignore[call-arg]
    assert schedule.delays == (30, 60, 120, 240, 480, 900)
    # 26 hours: the ramp (30.5 min) then every 15 min: 108 checks, not 3,120 every 30 s.
    assert schedule.retries == 6 + 102
    waits = [schedule.delay_after(n) for n in range(1, schedule.retries + 1)]
    assert sum(w or 0 for w in waits) >= 26 * 3600
    assert waits[:7] == [30, 60, 120, 240, 480, 900, 900]
    assert schedule.delay_after(schedule.retries + 1) is None  # the last try: no next check


def test_a_one_second_test_interval_stays_fast_with_a_small_cap() -> None:
    schedule = PollSchedule.backoff(1, 4, 3600)
    assert schedule.delays == (1, 2, 4)
    assert schedule.retries == 3 + 900 - 1  # 7 s of ramp, then every 4 s
    assert PollSchedule.backoff(60, 30, 600) == PollSchedule((60,), 10)  # cap below: none
    # A short wait (tests give up after 3.6 s): the ramp stops there, the last delay cut short.
    short = PollSchedule.backoff(0.2, 900, 3.6)
    assert short.delays == pytest.approx((0.2, 0.4, 0.8, 1.6, 0.6)) and short.retries == 5


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "0.2 s"),
        (30, "30 s"),
        (89, "89 s"),
        (240, "4 min"),
        (3600, "1 h"),
        (23 * 3600 + 10 * 60, "23 h 10 min"),
        (50 * 3600, "2 d 2 h"),
        (-5, "0 s"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_waiting_poll_is_one_line_that_says_what_happens() -> None:
    line = waiting_line("main", progress(), 30, NOW)
    assert line == "main batch: 39 processing, next check in 30 s, expires in 23 h 10 min"
    several = progress(batches_total=3, batches_ended=1, processing=200, succeeded=99, errored=1)
    assert waiting_line("main", several, 900, NOW) == (
        "main batches (1 of 3 ended): 200 processing, 99 succeeded, 1 errored, next check in "
        "15 min, first expires in 23 h 10 min"
    )
    assert "no further check" in waiting_line("main", progress(), None, NOW)


def test_the_poll_that_ends_the_wait_says_how_long_it_took() -> None:
    done = progress(processing=0, succeeded=38, expired=1, all_ended=True, batches_ended=1)
    assert (
        settled_line("pilot", done, NOW)
        == "pilot batch ended after 50 min: 38 succeeded, 1 expired"
    )
    wave = progress(ready_to_send=2)
    assert "2 file(s) waiting for the processing queue may be sent now" in settled_line(
        "main", wave, NOW
    )


def test_a_failed_check_says_when_the_next_one_is() -> None:
    line = check_failed_line("main", RuntimeError("529 overloaded_error"), 60)
    assert line == "main batches: status check failed (529 overloaded_error); next check in 60 s"


def test_a_deadline_before_the_next_check_is_not_missed() -> None:
    deadline = NOW + timedelta(minutes=5)
    assert nap_before_deadline(deadline, 900, NOW) == 301.0  # just past it
    assert nap_before_deadline(deadline, 60, NOW) is None  # the next check comes first
    assert nap_before_deadline(NOW - timedelta(seconds=1), 900, NOW) is None  # passed: cancel now
    assert nap_before_deadline(None, 900, NOW) is None

    checks: list[Progress] = [
        progress(deadline_at=deadline),
        progress(processing=0, all_ended=True),
    ]
    naps: list[float] = []
    result = poll(lambda: checks.pop(0), 900, sleep=naps.append, now=lambda: NOW)
    assert naps == [301.0] and result.all_ended  # slept to the deadline, then checked again
    # Without a deadline ahead: one check per poll.
    calls: list[int] = []
    poll(lambda: calls.append(1) or progress(), 900, sleep=naps.append, now=lambda: NOW)
    assert calls == [1] and naps == [301.0]
