"""Where a job's batches stand: the await-completion sensor's single check, and cancel.

`check_batches` retrieves every batch that has not ended yet, stores each answer in the
ledger and sums up. It never waits: the Prefect task calls it, and raises `BatchesNotReady`
(carrying the `Progress`) while `all_ended` is false, so Prefect's retries do the polling.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from halfrate.errors import ActionableError, APIError, ErrorKind
from halfrate.gateway import BatchGateway
from halfrate.ledger import UNSENT, BatchRecord, BatchStatus, Ledger

EXPIRY_GRACE = timedelta(hours=1)
"""How long past `expires_at` a batch may still be processing before it is reported."""


class Progress(BaseModel):
    """The batches of one attempt (or of the whole job), summed up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batches_total: int
    batches_ended: int
    processing: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    earliest_expires_at: datetime | None
    """When the first batch still processing expires (None once all ended)."""
    oldest_created_at: datetime | None
    all_ended: bool
    """Every batch has ended (files without a batch are counted in `unsubmitted`, not here)."""
    unsubmitted: int = 0
    """Request files with no batch id yet (never sent, or an intent to reconcile)."""
    ready_to_send: int = 0
    """Files the next submit may send as batches now (they waited for the processing queue,
    and a batch has ended or the API's retry-after has passed): the wait is over for now."""
    deadline_at: datetime | None = None
    """The job's deadline when it has not passed yet: a check must come right after it."""

    @property
    def settled(self) -> bool:
        """Nothing to wait for: every batch ended, or a wave of files can be sent."""
        return self.all_ended or self.ready_to_send > 0

    @property
    def request_counts(self) -> dict[str, int]:
        """The five request counts summed over the batches, in the API's order."""
        return {
            "processing": self.processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "canceled": self.canceled,
            "expired": self.expired,
        }

    def summary(self) -> str:
        return (
            f"{self.batches_ended}/{self.batches_total} batches ended; requests: "
            f"{self.processing} processing, {self.succeeded} succeeded, {self.errored} errored, "
            f"{self.canceled} canceled, {self.expired} expired"
        )


class KeepWaiting(Exception):
    """The sensor task raises it to be retried at its next poll: the wait goes on."""


class BatchesNotReady(KeepWaiting):
    """Some batches are still processing."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(f"batches not ended yet: {progress.summary()}")
        self.progress = progress


class CheckFailed(KeepWaiting):
    """A status check met a passing API fault (overloaded, a dropped connection): the next
    poll tries again."""


class BatchMissingError(RuntimeError, ActionableError):
    """The API does not know a batch the ledger holds (deleted, or another workspace)."""


class BatchOverdueError(RuntimeError):
    """A batch is still processing well past its `expires_at`."""


def check_batches(
    ledger: Ledger,
    gateway: BatchGateway,
    *,
    attempt: int | None = None,
    purpose: str | None = None,
    expiry_grace: timedelta = EXPIRY_GRACE,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Progress:
    """Retrieve every not-yet-ended batch (of `attempt` and `purpose`, or all), record it, and
    sum up. Real-time pseudo-batches are not the API's batches: they are left out."""
    records = _batches(ledger.records(attempt=attempt, purpose=purpose))
    for record in records:
        if record.status is BatchStatus.submitted:
            assert record.batch_id is not None
            try:
                batch = gateway.retrieve(record.batch_id, created_at=record.created_at)
            except APIError as exc:
                if exc.kind is not ErrorKind.not_found:
                    raise
                raise BatchMissingError(
                    f"batch {record.batch_id} ({record.file.path}) no longer exists on the API "
                    f"({exc}): it was deleted, or belongs to another workspace or "
                    "API key (or to the built-in emulator: rerun with --emulator). Check "
                    "ANTHROPIC_API_KEY; if it was deleted, restart the job."
                ) from None
            ledger.update_progress(batch.model_dump(mode="json"))
    everything = ledger.records(attempt=attempt, purpose=purpose)
    records = _batches(everything)
    unsent = sum(1 for r in everything if r.status in UNSENT)
    progress = _summarize(records).model_copy(update={"unsubmitted": unsent})
    _check_overdue(records, now(), expiry_grace)
    return progress


def cancel_batches(ledger: Ledger, gateway: BatchGateway) -> list[str]:
    """Cancel, at the user's request, every batch of the job that has not ended.

    The cancel is recorded in the ledger first (job-wide and per batch), so the running job
    sends nothing more and ends Cancelled, and the rows of these batches end `canceled` by the
    user. Returns the ids cancel was sent for. A batch that ended meanwhile (the API refuses to
    cancel it) is tolerated and recorded.
    """
    flying = [r for r in _batches(ledger.records()) if r.status is BatchStatus.submitted]
    ledger.request_cancel([r.batch_id for r in flying if r.batch_id is not None])
    canceled: list[str] = []
    for record in flying:
        assert record.batch_id is not None
        try:
            batch = gateway.cancel(record.batch_id)
        except APIError as exc:
            if exc.status not in (400, 409):
                raise
            batch = gateway.retrieve(record.batch_id, created_at=record.created_at)
            if batch.processing_status == "in_progress":
                raise
        else:
            canceled.append(record.batch_id)
        ledger.update_progress(batch.model_dump(mode="json"))
    return canceled


def _batches(records: list[BatchRecord]) -> list[BatchRecord]:
    """The records of the API's batches (not real-time pseudo-batches, not unsent files)."""
    return [r for r in records if r.batch_id is not None and not r.realtime]


def _summarize(records: list[BatchRecord]) -> Progress:
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    pending_expiry: list[datetime] = []
    created: list[datetime] = []
    ended = 0
    for record in records:
        for key in counts:
            counts[key] += (record.request_counts or {}).get(key, 0)
        if record.status is BatchStatus.submitted:
            if record.expires_at:
                pending_expiry.append(_parse_time(record.expires_at))
        else:
            ended += 1
        if record.created_at:
            created.append(_parse_time(record.created_at))
    return Progress(
        batches_total=len(records),
        batches_ended=ended,
        earliest_expires_at=min(pending_expiry, default=None),
        oldest_created_at=min(created, default=None),
        all_ended=ended == len(records),
        **counts,
    )


def _check_overdue(records: list[BatchRecord], now: datetime, grace: timedelta) -> None:
    for record in records:
        if record.status is BatchStatus.submitted and record.expires_at:
            expires = _parse_time(record.expires_at)
            if now > expires + grace:
                raise BatchOverdueError(
                    f"batch {record.batch_id} ({record.file.path}) expired at "
                    f"{expires.isoformat()} but is still {record.processing_status!r} "
                    f"{now - expires} later; the API should have ended it. Check it with "
                    "`halfrate status`, or cancel it with `halfrate cancel`."
                )


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
