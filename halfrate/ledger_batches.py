"""The request files of a job and their batches: registered, intended, created, polled, ended,
sent in real time, split or failed (the statuses are described in `halfrate.ledger_records`).

Each request file gets at most one batch: the `batches` row is written with status `intent`
*before* the create call and gets its `batch_id` right after, so a crash at any point leaves
a record that says what to do next.
"""

import sqlite3
from typing import Any

import orjson

from halfrate.ledger_file import LedgerFile
from halfrate.ledger_records import REALTIME, BatchRecord, BatchStatus, RequestFile, now_iso

_COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


class BatchRecords(LedgerFile):
    """The ledger's `request_files` and `batches` tables (a part of `halfrate.ledger.Ledger`)."""

    def add_request_files(self, files: list[RequestFile]) -> None:
        """Register built files; re-registering the same file is a no-op, a changed one an error."""
        with self._connect() as con:
            for f in files:
                row = con.execute(
                    "select sha256 from request_files where path = ?", (f.path,)
                ).fetchone()
                if row is not None and row[0] != f.sha256:
                    raise RuntimeError(f"{f.path}: request file changed after it was registered")
                con.execute(
                    "insert or ignore into request_files (path, attempt, part, purpose,"
                    " n_requests, body_bytes, sha256, created_at, parent)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        f.path,
                        f.attempt,
                        f.part,
                        f.purpose,
                        f.n_requests,
                        f.body_bytes,
                        f.sha256,
                        now_iso(),
                        f.parent,
                    ),
                )

    def records(self, attempt: int | None = None, purpose: str | None = None) -> list[BatchRecord]:
        """Request files (optionally of one attempt or purpose) with their batch state, in order."""
        sql = (
            "select f.path, f.attempt, f.part, f.purpose, f.n_requests, f.body_bytes, f.sha256,"
            " b.status, b.intent_at, b.batch_id, b.created_at, b.expires_at, b.ended_at,"
            " b.processing_status, b.request_counts, b.note, f.parent, b.mode"
            " from request_files f left join batches b using (path)"
            " where (? is null or f.attempt = ?) and (? is null or f.purpose = ?)"
            " order by f.attempt, f.purpose desc, f.part, f.path"
        )
        with self._connect() as con:
            rows = con.execute(sql, (attempt, attempt, purpose, purpose)).fetchall()
        return [_record(r) for r in rows]

    def record(self, path: str) -> BatchRecord:
        matches = [r for r in self.records() if r.file.path == path]
        if not matches:
            raise KeyError(path)
        return matches[0]

    def known_batch_ids(self) -> set[str]:
        with self._connect() as con:
            rows = con.execute("select batch_id from batches where batch_id is not null")
            return {r[0] for r in rows}

    def record_intent(self, path: str, at: str | None = None) -> str:
        """Durably note that a create for `path` is about to be sent; returns the intent time.

        `at` backdates the intent (recovery: a create may have been sent since then).
        """
        at = at or now_iso()
        with self._connect() as con:
            existing = con.execute("select status from batches where path = ?", (path,)).fetchone()
            if existing is not None:
                raise RuntimeError(f"{path}: already has a batch record ({existing[0]})")
            con.execute(
                "insert into batches (path, status, intent_at, updated_at) values (?, ?, ?, ?)",
                (path, BatchStatus.intent, at, at),
            )
        return at

    def clear_intent(self, path: str, note: str) -> None:
        """Forget an intent whose create was definitely refused (a 4xx), so it can be fixed."""
        with self._connect() as con:
            con.execute(
                "delete from batches where path = ? and status = ? and batch_id is null",
                (path, BatchStatus.intent),
            )

    def record_batch(self, path: str, batch: dict[str, Any], note: str | None = None) -> None:
        """Attach the created (or reconciled) batch to its request file."""
        with self._connect() as con:
            con.execute(
                "update batches set batch_id = ?, status = ?, created_at = ?, expires_at = ?,"
                " processing_status = ?, request_counts = ?, note = ?, updated_at = ?"
                " where path = ? and status = ?",
                (
                    batch["id"],
                    BatchStatus.submitted,
                    batch["created_at"],
                    batch["expires_at"],
                    batch["processing_status"],
                    orjson.dumps(batch["request_counts"]).decode(),
                    note,
                    now_iso(),
                    path,
                    BatchStatus.intent,
                ),
            )

    def update_progress(self, batch: dict[str, Any]) -> None:
        """Store the latest retrieve; an ended batch moves `submitted` to `ended`."""
        ended = batch["processing_status"] == "ended"
        with self._connect() as con:
            con.execute(
                "update batches set processing_status = ?, request_counts = ?, ended_at = ?,"
                " status = case when ? and status = ? then ? else status end, updated_at = ?"
                " where batch_id = ?",
                (
                    batch["processing_status"],
                    orjson.dumps(batch["request_counts"]).decode(),
                    batch.get("ended_at"),
                    ended,
                    BatchStatus.submitted,
                    BatchStatus.ended,
                    now_iso(),
                    batch["id"],
                ),
            )

    # -- real-time pseudo-batches (halfrate/realtime.py) -------------------------------------

    def record_realtime(self, path: str, batch_id: str, n_requests: int) -> None:
        """Start sending a file in real time as the pseudo-batch `batch_id` (no batch before)."""
        at = now_iso()
        counts = orjson.dumps(dict.fromkeys(_COUNT_KEYS, 0) | {"processing": n_requests})
        with self._connect() as con:
            con.execute(
                "insert into batches (path, status, intent_at, batch_id, created_at,"
                " processing_status, request_counts, updated_at, mode)"
                " values (?, ?, ?, ?, ?, 'in_progress', ?, ?, ?)",
                (path, BatchStatus.submitted, at, batch_id, at, counts.decode(), at, REALTIME),
            )

    def end_realtime(self, batch_id: str, counts: dict[str, int]) -> None:
        """Every answer of a real-time pseudo-batch is in its verified results file."""
        at = now_iso()
        with self._connect() as con:
            con.execute(
                "update batches set status = ?, processing_status = 'ended', ended_at = ?,"
                " request_counts = ?, updated_at = ? where batch_id = ? and mode = ?",
                (BatchStatus.downloaded, at, orjson.dumps(counts).decode(), at, batch_id,
                 REALTIME),
            )  # fmt: skip

    def set_status(self, batch_id: str, status: BatchStatus, note: str | None = None) -> None:
        with self._connect() as con:
            con.execute(
                "update batches set status = ?, note = coalesce(?, note), updated_at = ?"
                " where batch_id = ?",
                (status, note, now_iso(), batch_id),
            )

    # -- files the API refused as too large (413) ------------------------------------------

    def split(self, path: str, halves: list[RequestFile], note: str) -> None:
        """Replace a file whose create was refused as too large by its halves (one transaction)."""
        with self._connect() as con:
            for f in halves:
                con.execute(
                    "insert or replace into request_files (path, attempt, part, purpose,"
                    " n_requests, body_bytes, sha256, created_at, parent)"
                    " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f.path, f.attempt, f.part, f.purpose, f.n_requests, f.body_bytes,
                     f.sha256, now_iso(), path),
                )  # fmt: skip
            self._close_intent(con, path, BatchStatus.split_up, note)

    def mark_failed(self, path: str, reason: str) -> None:
        """A single request the API refuses even alone: nothing was sent, the note says why."""
        with self._connect() as con:
            self._close_intent(con, path, BatchStatus.failed, reason)

    def _close_intent(
        self, con: sqlite3.Connection, path: str, status: BatchStatus, note: str
    ) -> None:
        changed = con.execute(
            "update batches set status = ?, note = ?, updated_at = ?"
            " where path = ? and status = ? and batch_id is null",
            (status, note, now_iso(), path, BatchStatus.intent),
        ).rowcount
        if changed != 1:
            raise RuntimeError(f"{path}: has no pending intent to mark {status}")

    def has_batches(self) -> bool:
        """Whether any create was ever recorded (an intent, a batch, a split...)."""
        with self._connect() as con:
            return int(con.execute("select count(*) from batches").fetchone()[0]) > 0


def _record(r: tuple[Any, ...]) -> BatchRecord:
    counts = orjson.loads(r[14]) if r[14] else None
    return BatchRecord(
        file=RequestFile(
            path=r[0],
            attempt=r[1],
            part=r[2],
            purpose=r[3],
            n_requests=r[4],
            body_bytes=r[5],
            sha256=r[6],
            parent=r[16],
        ),
        status=BatchStatus(r[7]) if r[7] else None,
        intent_at=r[8],
        batch_id=r[9],
        created_at=r[10],
        expires_at=r[11],
        ended_at=r[12],
        processing_status=r[13],
        request_counts=counts,
        note=r[15],
        mode=r[17] or "batch",
    )
