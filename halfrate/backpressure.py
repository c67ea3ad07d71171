"""Queue-limit backpressure: which request files may become batches now, and which wait.

A workspace caps the batch requests in its processing queue (requests of batches that have
not ended); a create over the cap is refused with a 429. halfrate never hammers it and never
fails for it while its own batches hold queue room:

- `HALFRATE_MAX_QUEUED_REQUESTS` caps what a job puts in flight itself: a file that would take
  the job's in-flight requests above it waits (unless nothing is in flight: a job always
  makes progress; build cuts files to the cap, so each fits alone);
- a 429 on create while the job has batches in flight means the queue is full: the file is
  not sent again now (nothing was created) and the files after it wait too.

Either way the submit stops and records a *hold* in the ledger: the job's in-flight requests
at that moment and, after a 429, the time to try again anyway (the answer's `retry-after`,
at least a backoff, 10 poll intervals, that doubles with each 429 in a row, up to `MAX_HOLD`). The await sensor
releases the hold as soon as one of the job's batches ends (fewer requests in flight) or that
time has passed, and the flow submits the next wave. A 429 while nothing of the job is in
flight is an ordinary refusal (`halfrate.submit`: sent again after its retry-after, a few
times, then a safe failure).

A job whose files may not become batches at all (`mode: realtime`, or past its deadline)
sends them in real time instead (`batches_allowed` is False): see halfrate/realtime.py.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from halfrate.ledger import BatchStatus, Ledger

HOLD_KEY = "queue_hold"
HOLDS_IN_A_ROW_KEY = "queue_holds_in_a_row"
MAX_HOLD = timedelta(minutes=30)
"""The longest a hold after a 429 waits before trying again (when no batch ends first)."""


class QueueFull(Exception):
    """The next file does not fit in the processing queue now: it and the rest wait."""

    def __init__(self, reason: str, retry_after: float | None = None, refused: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.refused = refused
        """The API refused a create (429); False: halfrate's own cap held the file back."""


@dataclass(frozen=True)
class Hold:
    """A submit that stopped for the queue: what releases it."""

    in_flight: int
    """The job's requests in flight when it stopped: fewer means a batch ended."""
    until: str | None
    """After a 429: when to try again anyway (ISO, UTC); None: only a batch's end releases it."""
    reason: str


@dataclass(frozen=True)
class SubmitGate:
    """What `submit_pending` asks before each create."""

    ledger: Ledger
    max_queued: int | None = None
    """HALFRATE_MAX_QUEUED_REQUESTS: the most requests the job keeps in flight."""
    batches_allowed: Callable[[], bool] = lambda: True
    """False once the job's files go out in real time (mode realtime, or past the deadline)."""
    hold_backoff: float = 300.0
    """After a 429, the first hold lasts at least this long (doubling with each 429 in a row),
    unless a batch of the job ends first: the queue frees as batches end, not by the clock."""

    def in_flight(self) -> int:
        return in_flight_requests(self.ledger)

    def check_room(self, n_requests: int) -> None:
        """Raise `QueueFull` when a file of `n_requests` would go over the job's own cap."""
        if self.max_queued is None:
            return
        flying = self.in_flight()
        if flying and flying + n_requests > self.max_queued:
            raise QueueFull(
                f"{flying:,} requests in flight + {n_requests:,} would exceed "
                f"HALFRATE_MAX_QUEUED_REQUESTS={self.max_queued:,}"
            )


def in_flight_requests(ledger: Ledger) -> int:
    """Requests of the job's batches that have not ended (real-time sends are not queued)."""
    return sum(
        r.file.n_requests
        for r in ledger.records()
        if r.status is BatchStatus.submitted and not r.realtime
    )


def hold(ledger: Ledger, full: QueueFull, base_backoff: float) -> Hold:
    """Record that the submit stopped for the queue (after a 429: with a backoff)."""
    until = None
    if full.refused:
        in_a_row = int(ledger.get_meta(HOLDS_IN_A_ROW_KEY) or 0) + 1
        ledger.set_meta(HOLDS_IN_A_ROW_KEY, str(in_a_row))
        backoff = min(base_backoff * 2 ** (in_a_row - 1), MAX_HOLD.total_seconds())
        wait = max(full.retry_after or 0.0, backoff)
        until = (datetime.now(UTC) + timedelta(seconds=wait)).isoformat()
    held = Hold(in_flight_requests(ledger), until, full.reason)
    ledger.set_meta(HOLD_KEY, orjson.dumps(held.__dict__).decode())
    return held


def release(ledger: Ledger, *, created: bool = False) -> None:
    """Forget the hold (a submit is trying again); a created batch also resets the backoff."""
    ledger.set_meta(HOLD_KEY, None)
    if created:
        ledger.set_meta(HOLDS_IN_A_ROW_KEY, None)


def current_hold(ledger: Ledger) -> Hold | None:
    raw = ledger.get_meta(HOLD_KEY)
    return None if raw is None else Hold(**orjson.loads(raw))


def hold_released(ledger: Ledger, now: datetime | None = None) -> bool:
    """Whether a submit may try again: no hold, a batch ended since, or its time has come."""
    held = current_hold(ledger)
    if held is None:
        return True
    if in_flight_requests(ledger) < held.in_flight:
        return True
    now = now or datetime.now(UTC)
    return held.until is not None and now >= datetime.fromisoformat(held.until)
