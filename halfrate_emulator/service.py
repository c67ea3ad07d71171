"""The emulator's core: batch operations over the store, the virtual clock and the fault plan.

Everything here is synchronous and serialised by one lock; the HTTP layer calls it from worker
threads. Only parsing a create body runs outside the lock (it touches only its own new folder).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from halfrate_emulator.clock import Timer, VirtualClock
from halfrate_emulator.errors import ApiError, invalid, not_found
from halfrate_emulator.faults import FaultState
from halfrate_emulator.finalize import finalize_batch
from halfrate_emulator.ids import new_id
from halfrate_emulator.ingest import parse_body
from halfrate_emulator.lifecycle import BatchState, batch_state, fixture_batch, render_batch
from halfrate_emulator.options import EmulatorOptions
from halfrate_emulator.ratelimit import RequestRateLimit, retry_after
from halfrate_emulator.store import BatchRow, Store

REQUEST_LOG_SIZE = 2000


class Emulator:
    """State and behaviour of one emulator instance (one data directory)."""

    def __init__(self, data_dir: Path, options: EmulatorOptions, timer: Timer = time.time) -> None:
        self.options = options
        self.store = Store(data_dir)
        self.lock = threading.RLock()
        self._timer = timer
        self.clock = self._load_clock()
        self.faults = FaultState(options.faults)
        self.messages_rate = RequestRateLimit(
            options.messages_rate_limit, options.rate_limit_window
        )
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    # -- clock -------------------------------------------------------------------------------
    def _load_clock(self) -> VirtualClock:
        saved = self.store.get_meta("clock")
        if saved is None:
            start = self._timer()
            clock = VirtualClock(self.options.time_scale, start, start, 0.0, self._timer)
        else:
            virtual, real, offset, scale = orjson.loads(saved)
            clock = VirtualClock(scale, virtual, real, offset, self._timer)
            if scale != self.options.time_scale:
                clock.rebase(self.options.time_scale)
        self._save_clock(clock)
        return clock

    def _save_clock(self, clock: VirtualClock) -> None:
        anchors = [clock.virtual_anchor, clock.real_anchor, clock.offset, clock.scale]
        self.store.set_meta("clock", orjson.dumps(anchors).decode())

    def advance_clock(self, seconds: float) -> float:
        """Move virtual time forward; returns the new virtual now."""
        with self.lock:
            now = self.clock.advance(seconds)
            self._save_clock(self.clock)
            return now

    def reset(self) -> None:
        """Forget all state, restart the clock at real time and reinstall the start-up faults."""
        with self.lock:
            self.store.reset()
            self.clock = self._load_clock()
            self.faults.replace(self.options.faults)
            self.request_log.clear()
            self.messages_rate = RequestRateLimit(
                self.options.messages_rate_limit, self.options.rate_limit_window
            )

    # -- create ------------------------------------------------------------------------------
    def spool_path(self) -> Path:
        """A fresh file name for an incoming create body."""
        return self.store.spool_dir / new_id("spool")

    def create_batch(self, spool: Path, size: int, version: str) -> BatchRow:
        """Validate a spooled create body and commit the batch (and its audit row)."""
        batch_id = new_id("msgbatch")
        folder = self.store.batch_dir(batch_id)
        folder.mkdir(parents=True)
        try:
            parsed = parse_body(spool, folder, self.options.max_requests)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            spool.unlink(missing_ok=True)
        with self.lock:
            now = self.clock.now()
            try:
                self._check_queue(parsed.count, now)
            except ApiError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self.store.insert_batch(
                {
                    "id": batch_id,
                    "created_at": now,
                    "request_count": parsed.count,
                    "bytes": size,
                    "version": version,
                    "processing_seconds": self.options.processing_seconds,
                    "cancel_seconds": self.options.cancel_seconds,
                    "faults": self.faults.config.model_dump_json(),
                    "transient_404_left": self.faults.config.transient_404,
                }
            )
            self.store.add_audit(batch_id, parsed.count, size, now)
            return self.get_row(batch_id)

    def _check_queue(self, count: int, now: float) -> None:
        """429 when the batch would put more requests in the processing queue than the cap."""
        cap = self.options.max_queued_requests
        if cap is None:
            return
        queued = sum(
            row.request_count
            for row in self.store.pending_except(-1)
            if not batch_state(row, now).ended
        )
        if queued + count > cap:
            raise ApiError(
                429,
                f"Number of batch requests in the processing queue would exceed your limit of "
                f"{cap:,} ({queued:,} queued, {count:,} in this batch); retry when earlier "
                "batches have ended (emulator).",
                headers=retry_after(self.faults.config.retry_after),
            )

    def mark_dropped(self, batch_id: str) -> None:
        """Record in the audit that a create's response was never delivered."""
        with self.lock:
            self.store.mark_dropped(batch_id)

    # -- observe -----------------------------------------------------------------------------
    def get_row(self, batch_id: str) -> BatchRow:
        """A live batch row, or 404."""
        row = self.store.get_batch(batch_id)
        if row is None or row.deleted:
            raise not_found(f"Message Batch {batch_id} not found")
        return row

    def observe(self, batch_id: str) -> tuple[BatchRow, BatchState]:
        """The batch and its current state, finalising it if it has just ended."""
        with self.lock:
            row = self.get_row(batch_id)
            state = batch_state(row, self.clock.now())
            return self._settle(row, state), state

    def _settle(self, row: BatchRow, state: BatchState) -> BatchRow:
        """Finalise an ended batch, after any other batch that ended no later (cache order)."""
        if not state.ended or row.counts is not None:
            return row
        now = self.clock.now()
        earlier = []
        for other in self.store.pending_except(row.seq):
            other_state = batch_state(other, now)
            if other_state.ended and other_state.end_at <= state.end_at:
                earlier.append((other_state.end_at, other.seq, other, other_state))
        for _, _, other, other_state in sorted(earlier, key=lambda e: (e[0], e[1])):
            self._finalize(other, other_state)
        self._finalize(row, state)
        return self.get_row(row.id)

    def _finalize(self, row: BatchRow, state: BatchState) -> None:
        counts = finalize_batch(self.store, row, state, self.options.shuffle_results)
        self.store.update_batch(row.id, counts=orjson.dumps(counts).decode())

    def render(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """The MessageBatch object for `batch_id` as of now."""
        if self.options.fixture_mode and not self._exists(batch_id):
            return self.fixture_batch(batch_id, base_url, "ended")
        row, state = self.observe(batch_id)
        return render_batch(row, state, base_url)

    def _exists(self, batch_id: str) -> bool:
        row = self.store.get_batch(batch_id)
        return row is not None and not row.deleted

    def fixture_batch(self, batch_id: str, base_url: str, status: str) -> dict[str, Any]:
        """A well-formed batch for an id that does not exist (fixture mode only)."""
        return fixture_batch(batch_id, self.clock.now(), base_url, status == "ended")

    def take_transient_404(self, batch_id: str) -> None:
        """Answer 404 while the batch still has injected "not yet visible" calls left."""
        with self.lock:
            row = self.store.get_batch(batch_id)
            if row is not None and not row.deleted and row.transient_404_left > 0:
                self.store.update_batch(batch_id, transient_404_left=row.transient_404_left - 1)
                raise not_found(f"Message Batch {batch_id} not found")

    # -- list / cancel / delete / results ----------------------------------------------------
    def list_page(
        self, limit: int, after_id: str | None, before_id: str | None, base_url: str
    ) -> dict[str, Any]:
        """One page of batches, newest first, in the API's list shape."""
        with self.lock:
            after = self._cursor(after_id)
            before = self._cursor(before_id) if after is None else None
            rows = self.store.page(after, before, limit + 1)
            has_more = len(rows) > limit
            rows = (rows[1:] if before is not None else rows[:limit]) if has_more else rows
            now = self.clock.now()
            data = []
            for row in rows:
                state = batch_state(row, now)
                data.append(render_batch(self._settle(row, state), state, base_url))
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"data": data, "has_more": has_more, "first_id": first, "last_id": last}

    def _cursor(self, batch_id: str | None) -> int | None:
        if batch_id is None:
            return None
        row = self.store.get_batch(batch_id)
        if row is None:
            if self.options.fixture_mode:
                return None
            raise invalid(f"Invalid cursor: Message Batch {batch_id} not found")
        return row.seq

    def cancel(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """Start cancelling a batch that has not ended."""
        if self.options.fixture_mode and not self._exists(batch_id):
            return self.fixture_batch(batch_id, base_url, "canceling")
        with self.lock:
            row, state = self.observe(batch_id)
            if state.ended:
                raise invalid(f"Message Batch {batch_id} has already ended and cannot be canceled.")
            if row.cancel_initiated_at is None:
                self.store.update_batch(batch_id, cancel_initiated_at=self.clock.now())
            return self.render(batch_id, base_url)

    def delete(self, batch_id: str) -> dict[str, Any]:
        """Delete an ended batch and its files."""
        deleted = {"id": batch_id, "type": "message_batch_deleted"}
        if self.options.fixture_mode and not self._exists(batch_id):
            return deleted
        with self.lock:
            _, state = self.observe(batch_id)
            if not state.ended:
                raise invalid(
                    f"Message Batch {batch_id} cannot be deleted while it is still processing; "
                    "cancel it first."
                )
            self.store.update_batch(batch_id, deleted=1)
            folder = self.store.batch_dir(batch_id)
            for name in ("requests.jsonl", "results.jsonl"):  # custom_ids.txt stays for the audit
                (folder / name).unlink(missing_ok=True)
        return deleted

    def results_path(self, batch_id: str) -> Path | None:
        """The results file of an ended, unarchived batch (None for a fixture-mode id)."""
        if self.options.fixture_mode and not self._exists(batch_id):
            return None
        _, state = self.observe(batch_id)
        if not state.ended:
            raise invalid(f"Message Batch {batch_id} has not finished processing; no results yet.")
        if state.archived_at is not None:
            raise not_found(
                f"Results of Message Batch {batch_id} are no longer available (archived)."
            )
        return self.store.batch_dir(batch_id) / "results.jsonl"
