"""How the await-completion sensor paces itself and says what it is waiting for.

The sensor is a Prefect task retried once per poll. Its delays back off: from the poll interval,
doubling, up to a cap (30 s, 1, 2, 4, 8 min, then every 15 min by default), so a 24-hour wait
is about 100 checks, not 2,880, and the log says one line per check.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from halfrate.progress import Progress
from halfrate.settings import Settings


@dataclass(frozen=True)
class PollSchedule:
    """The delays before each retry of the sensor: Prefect's `retry_delay_seconds` (its last
    value repeats) and `retries`, enough to wait `max_wait` seconds in all."""

    delays: tuple[float, ...]
    retries: int

    @classmethod
    def of(cls, settings: Settings) -> "PollSchedule":
        return cls.backoff(
            settings.poll_interval, settings.max_poll_interval, settings.max_wait_hours * 3600
        )

    @classmethod
    def backoff(cls, interval: float, cap: float, max_wait: float) -> "PollSchedule":
        """`interval` doubling up to `cap` (never below `interval`), for `max_wait` seconds in
        all (the last delay cut short to end there when the ramp alone reaches it)."""
        cap = max(cap, interval)
        delays: list[float] = []
        delay, total = interval, 0.0
        while total < max_wait and delay < cap:
            delays.append(min(delay, max_wait - total))
            total += delays[-1]
            delay = min(2 * delay, cap)
        if total >= max_wait:
            return cls(tuple(delays), len(delays))
        return cls((*delays, cap), len(delays) + math.ceil((max_wait - total) / cap))

    def delay_after(self, run_count: int) -> float | None:
        """The wait before the next check once try `run_count` (1 = the first) has not seen
        the batches end; None when it was the last try the schedule allows."""
        if run_count > self.retries:
            return None
        return self.delays[min(run_count, len(self.delays)) - 1]

    @property
    def longest(self) -> float:
        return max(self.delays)


def utcnow() -> datetime:
    return datetime.now(UTC)


def poll(
    check: Callable[[], Progress],
    next_check_in: float | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = utcnow,
) -> Progress:
    """One poll of the sensor: `check`, and when the batches are still running but the job's
    deadline comes before the next scheduled check, sleep until just past the deadline and
    check again (that check cancels what has not ended, so real time starts on time)."""
    progress = check()
    if progress.settled or next_check_in is None:
        return progress
    nap = nap_before_deadline(progress.deadline_at, next_check_in, now())
    if nap is None:
        return progress
    sleep(nap)
    return check()


def nap_before_deadline(
    deadline: datetime | None, next_check_in: float, now: datetime
) -> float | None:
    """Seconds to sleep so that a check lands just past the job's deadline, when the deadline
    comes before the next scheduled check (the backoff must not make the deadline late); None
    when the next check is soon enough."""
    if deadline is None:
        return None
    until = (deadline - now).total_seconds()
    if until < 0 or until >= next_check_in:
        return None
    return until + 1.0


def format_duration(seconds: float) -> str:
    """`45 s`, `4 min`, `23 h 10 min`, `2 d 3 h`: what a person reads in a log line."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return (
            f"{seconds:.0f} s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f} s"
        )
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def until(moment: datetime | None, now: datetime) -> str | None:
    return None if moment is None else format_duration((moment - now).total_seconds())


def waiting_line(phase: str, progress: Progress, next_check_in: float | None, now: datetime) -> str:
    """One line per check while batches run, e.g. `main batch: 39 processing, next check in
    30 s, expires in 23 h 10 min`."""
    parts = [f"{_batches(phase, progress)}: {progress.processing:,} processing"]
    if progress.batches_ended:
        parts[0] += f", {_ended_counts(progress)}"
    if next_check_in is None:
        parts.append("no further check (HALFRATE_MAX_WAIT_HOURS reached; a rerun resumes)")
    else:
        parts.append(f"next check in {format_duration(next_check_in)}")
    expires = until(progress.earliest_expires_at, now)
    if expires is not None:
        first = "first " if progress.batches_total - progress.batches_ended > 1 else ""
        parts.append(f"{first}expires in {expires}")
    return ", ".join(parts)


def settled_line(phase: str, progress: Progress, now: datetime) -> str:
    """The check that ends a wait: every batch ended, or files may be sent now."""
    start = progress.oldest_created_at
    after = "" if start is None else f" after {format_duration((now - start).total_seconds())}"
    if progress.all_ended:
        return f"{_batches(phase, progress)} ended{after}: {_ended_counts(progress)}"
    return (
        f"{_batches(phase, progress)}: {progress.ready_to_send} file(s) waiting for the "
        f"processing queue may be sent now{after}"
    )


def check_failed_line(phase: str, error: Exception, next_check_in: float | None) -> str:
    """A status check the API did not answer (a passing fault): the wait goes on."""
    then = "" if next_check_in is None else f"; next check in {format_duration(next_check_in)}"
    return f"{phase} batches: status check failed ({error}){then}"


def _batches(phase: str, progress: Progress) -> str:
    n = progress.batches_total
    if n == 1:
        return f"{phase} batch"
    return f"{phase} batches ({progress.batches_ended} of {n} ended)"


def _ended_counts(progress: Progress) -> str:
    counts = {k: v for k, v in progress.request_counts.items() if k != "processing" and v}
    return ", ".join(f"{v:,} {k}" for k, v in counts.items()) or "no requests"
