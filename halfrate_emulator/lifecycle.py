"""The batch state machine, computed from the virtual clock (no background task).

A batch's state is a pure function of its row and the current virtual time, so it is the same
no matter when or how often it is observed: in_progress -> (canceling) -> ended, expiry 24 h after
creation, archive 29 days after creation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from halfrate_emulator.clock import maybe_rfc3339, rfc3339
from halfrate_emulator.store import BatchRow

DAY = 86_400.0
EXPIRY_SECONDS = DAY
RETENTION_SECONDS = 29 * DAY

EndKind = Literal["complete", "canceled", "expired"]


@dataclass(frozen=True)
class BatchState:
    """What a batch looks like at one virtual instant."""

    status: Literal["in_progress", "canceling", "ended"]
    end_at: float
    end_kind: EndKind
    processed_fraction: float
    archived_at: float | None

    @property
    def ended(self) -> bool:
        """True once processing has ended."""
        return self.status == "ended"


def _progress(row: BatchRow, elapsed: float) -> float:
    """Fraction of the batch's requests sent to the model after `elapsed` virtual seconds."""
    if row.processing_seconds <= 0:
        return 1.0
    return max(0.0, min(1.0, elapsed / row.processing_seconds))


def _end(row: BatchRow) -> tuple[float, EndKind, float]:
    """When and how the batch ends: the earliest of completion, cancel, expiry, admin force."""
    created = row.created_at
    candidates: list[tuple[float, EndKind, float]] = [
        (created + row.processing_seconds, "complete", 1.0)
    ]
    if row.forced_end_at is not None:
        candidates.append((row.forced_end_at, "complete", 1.0))
    if row.cancel_initiated_at is not None:
        started = _progress(row, row.cancel_initiated_at - created)
        candidates.append((row.cancel_initiated_at + row.cancel_seconds, "canceled", started))
    if row.forced_expire_at is not None:
        candidates.append(
            (row.forced_expire_at, "expired", _progress(row, row.forced_expire_at - created))
        )
    candidates.append((created + EXPIRY_SECONDS, "expired", _progress(row, EXPIRY_SECONDS)))
    return min(candidates, key=lambda c: c[0])  # ties: the earlier-listed (kinder) end wins


def batch_state(row: BatchRow, now: float) -> BatchState:
    """The state of `row` at virtual time `now`."""
    end_at, kind, fraction = _end(row)
    if now >= end_at:
        status: Literal["in_progress", "canceling", "ended"] = "ended"
    elif row.cancel_initiated_at is not None:
        status = "canceling"
    else:
        status = "in_progress"
    archive_at = row.created_at + RETENTION_SECONDS
    return BatchState(status, end_at, kind, fraction, archive_at if now >= archive_at else None)


def zero_counts(processing: int) -> dict[str, int]:
    """`request_counts` while a batch is not ended."""
    return {"processing": processing, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}


def render_batch(row: BatchRow, state: BatchState, base_url: str) -> dict[str, Any]:
    """The MessageBatch object, with all ten keys always present."""
    ended = state.ended
    counts = orjson.loads(row.counts) if ended and row.counts else zero_counts(row.request_count)
    return {
        "id": row.id,
        "type": "message_batch",
        "processing_status": state.status,
        "request_counts": counts,
        "ended_at": rfc3339(state.end_at) if ended else None,
        "created_at": rfc3339(row.created_at),
        "expires_at": rfc3339(row.created_at + EXPIRY_SECONDS),
        "archived_at": maybe_rfc3339(state.archived_at),
        "cancel_initiated_at": maybe_rfc3339(row.cancel_initiated_at),
        "results_url": f"{base_url}/v1/messages/batches/{row.id}/results" if ended else None,
    }


def fixture_batch(batch_id: str, now: float, base_url: str, ended: bool) -> dict[str, Any]:
    """A well-formed batch for any id (fixture mode: the SDK's generated tests)."""
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "canceling",
        "request_counts": zero_counts(0),
        "ended_at": rfc3339(now) if ended else None,
        "created_at": rfc3339(now - 60),
        "expires_at": rfc3339(now - 60 + EXPIRY_SECONDS),
        "archived_at": None,
        "cancel_initiated_at": None if ended else rfc3339(now),
        "results_url": f"{base_url}/v1/messages/batches/{batch_id}/results" if ended else None,
    }
