"""A job's progress in requests, for the Prefect progress artifact: how much of the attempt has
come back, what is still processing, how long it has waited and when its batches expire.

The unit is the request, not the batch: the priming batch (one request) counts as one request
of the attempt, not as half the work. The API counts a batch's requests as they end: per the
SDK's docs the outcome counts stay zero until the whole batch has ended, so on the real API the
figure moves batch by batch; whatever `retrieve` reports is shown as it is.
"""

from collections.abc import Collection
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from halfrate.ledger import BatchRecord, BatchStatus
from halfrate.waiting import format_duration

OUTCOMES = ("succeeded", "errored", "expired", "canceled")


class AttemptProgress(BaseModel):
    """The requests of one attempt (in the phases this run sends), summed over its files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    attempt: int
    phase: str
    """The phase being waited on: prime, pilot or main."""
    requests: int
    succeeded: int = 0
    errored: int = 0
    expired: int = 0
    canceled: int = 0
    processing: int = 0
    batches: int = 0
    batches_ended: int = 0
    oldest_created_at: datetime | None = None
    earliest_expires_at: datetime | None = None

    @property
    def ended(self) -> int:
        return self.succeeded + self.errored + self.expired + self.canceled

    @property
    def not_sent(self) -> int:
        """Requests of files not sent yet (a later phase, or waiting for the queue)."""
        return max(0, self.requests - self.ended - self.processing)

    @property
    def percent(self) -> float:
        return 100.0 * self.ended / self.requests if self.requests else 100.0


def attempt_progress(
    job: str,
    records: list[BatchRecord],
    attempt: int,
    phase: str,
    purposes: Collection[str] | None = None,
) -> AttemptProgress:
    """Sum the attempt's files (of `purposes`, or all). A file split in two counts through its
    halves; a deadline's real-time remainder is not counted again (its batch counts it)."""
    mine = [r for r in records if r.file.attempt == attempt]
    if purposes is not None:
        mine = [r for r in mine if r.file.purpose in purposes]
    split = {r.file.path for r in mine if r.status is BatchStatus.split_up}
    leaves = [r for r in mine if r.status is not BatchStatus.split_up]
    leaves = [r for r in leaves if r.file.parent is None or r.file.parent in split]
    counts = dict.fromkeys((*OUTCOMES, "processing"), 0)
    for record in leaves:
        if record.status is BatchStatus.failed:  # refused alone (too large): it will not be sent
            counts["errored"] += record.file.n_requests
            continue
        for key in counts:
            counts[key] += (record.request_counts or {}).get(key, 0)
    batches = [r for r in leaves if r.batch_id is not None and not r.realtime]
    pending = [r for r in batches if r.status is BatchStatus.submitted]
    return AttemptProgress(
        job=job,
        attempt=attempt,
        phase=phase,
        requests=sum(r.file.n_requests for r in leaves),
        batches=len(batches),
        batches_ended=len(batches) - len(pending),
        oldest_created_at=min((_time(r.created_at) for r in batches if r.created_at), default=None),
        earliest_expires_at=min(
            (_time(r.expires_at) for r in pending if r.expires_at), default=None
        ),
        **counts,
    )


def headline(p: AttemptProgress, now: datetime) -> str:
    """One line for the progress artifact: `312 of 694 requests ended (45%) · main phase ·
    first attempt · as of 14:05 UTC`."""
    attempt = f"attempt {p.attempt}" if p.attempt > 1 else "first attempt"
    return (
        f"{p.ended:,} of {p.requests:,} requests ended ({p.percent:.0f}%) · {p.phase} phase · "
        f"{attempt} · as of {now:%H:%M} UTC"
    )


def render_progress(p: AttemptProgress, now: datetime) -> str:
    """The counts as Markdown: the headline, a table, then batches and times."""
    lines = [
        f"**{p.job}**: {headline(p, now)}",
        "",
        "| succeeded | errored | expired | canceled | processing | not sent yet |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {p.succeeded:,} | {p.errored:,} | {p.expired:,} | {p.canceled:,} | {p.processing:,} "
        f"| {p.not_sent:,} |",
        "",
        " · ".join(_timing(p, now)),
    ]
    return "\n".join(lines)


def _timing(p: AttemptProgress, now: datetime) -> list[str]:
    parts = [f"batches ended: {p.batches_ended} of {p.batches}"]
    if p.oldest_created_at is not None:
        parts.append(f"waited {format_duration((now - p.oldest_created_at).total_seconds())}")
    if p.earliest_expires_at is not None:
        left = format_duration((p.earliest_expires_at - now).total_seconds())
        first = "first batch " if p.batches - p.batches_ended > 1 else ""
        parts.append(f"{first}expires in {left}")
    return parts


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
