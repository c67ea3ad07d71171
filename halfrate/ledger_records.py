"""The ledger's record types: a request file, the status of its batch, what is known of it.

Status of a request file's batch, in order:
  intent      create about to be sent (or sent, outcome unknown): reconcile before resending
  submitted   batch id known, not ended yet
  ended       the API says processing ended; results not yet on disk
  downloaded  raw results on disk and verified against the request file
  loaded      rows are in the warehouse
A file may also be sent in real time (`mode` 'realtime': a job's `mode: realtime`, or past its
deadline): its "batch" is then a real-time pseudo-batch `rt_...` that halfrate itself runs
(halfrate/realtime.py): `submitted` while its requests are being sent, `downloaded` once every
answer is in its results file.
And two ends of a file the API refused as too large (413), where nothing was created:
  split       replaced by its two halves (request files whose `parent` is this one)
  failed      a single request the API refuses even alone; the note says why
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class BatchStatus(StrEnum):
    intent = "intent"
    submitted = "submitted"
    ended = "ended"
    downloaded = "downloaded"
    loaded = "loaded"
    split_up = "split"  # (not `split`: that would hide str.split)
    failed = "failed"


UNSENT = (None, BatchStatus.intent)
"""Statuses of a file that still needs a create (or a reconciliation)."""
CLOSED = (BatchStatus.split_up, BatchStatus.failed)
"""Statuses of a file that will never have a batch of its own."""
REALTIME = "realtime"


@dataclass(frozen=True)
class RequestFile:
    """A built request file: one future batch."""

    path: str
    attempt: int
    part: int
    purpose: str
    n_requests: int
    body_bytes: int
    sha256: str
    parent: str | None = None


@dataclass(frozen=True)
class BatchRecord:
    """A request file together with what the ledger knows of its batch."""

    file: RequestFile
    status: BatchStatus | None
    intent_at: str | None
    batch_id: str | None
    created_at: str | None
    expires_at: str | None
    ended_at: str | None
    processing_status: str | None
    request_counts: dict[str, int] | None
    note: str | None
    mode: str = "batch"
    """'batch', or 'realtime' for a real-time pseudo-batch (`batch_id` rt_...)."""

    @property
    def realtime(self) -> bool:
        return self.mode == REALTIME


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
