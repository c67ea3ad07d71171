"""The job ledger: which request files exist and what became of each one's batch.

One SQLite file per job (stdlib, WAL). Each request file gets at most one batch: the
`batches` row is written with status `intent` *before* the create call and gets its
`batch_id` right after, so a crash at any point leaves a record that says what to do next.

Status of a request file's batch, in order:
  intent      create about to be sent (or sent, outcome unknown): reconcile before resending
  submitted   batch id known, not ended yet
  ended       the API says processing ended; results not yet on disk
  downloaded  raw results on disk and verified against the request file
  loaded      rows are in the warehouse
"""

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
create table if not exists request_files (
    path text primary key,          -- relative to the job folder
    attempt integer not null,
    part integer not null,
    purpose text not null,          -- 'prime' (cache warm-up) or 'main'
    n_requests integer not null,
    body_bytes integer not null,    -- size of the create body that will be sent
    sha256 text not null,
    created_at text not null
);
create table if not exists batches (
    path text primary key references request_files (path),
    status text not null,
    intent_at text not null,
    batch_id text unique,
    created_at text,
    expires_at text,
    ended_at text,
    processing_status text,
    request_counts text,            -- JSON object as the API returned it
    note text,
    updated_at text not null
);
"""


class BatchStatus(StrEnum):
    intent = "intent"
    submitted = "submitted"
    ended = "ended"
    downloaded = "downloaded"
    loaded = "loaded"


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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Ledger:
    """Typed access to one job's ledger file; every write is its own transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=60)) as con:
            con.execute("pragma journal_mode=wal")
            con.executescript(SCHEMA)  # runs in its own transaction

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as con:
            con.execute("pragma journal_mode=wal")
            con.execute("pragma synchronous=full")
            con.execute("begin immediate")
            try:
                yield con
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")

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
                    "insert or ignore into request_files values (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        f.path,
                        f.attempt,
                        f.part,
                        f.purpose,
                        f.n_requests,
                        f.body_bytes,
                        f.sha256,
                        now_iso(),
                    ),
                )

    def records(self, attempt: int | None = None, purpose: str | None = None) -> list[BatchRecord]:
        """Request files (optionally of one attempt or purpose) with their batch state, in order."""
        sql = (
            "select f.path, f.attempt, f.part, f.purpose, f.n_requests, f.body_bytes, f.sha256,"
            " b.status, b.intent_at, b.batch_id, b.created_at, b.expires_at, b.ended_at,"
            " b.processing_status, b.request_counts, b.note"
            " from request_files f left join batches b using (path)"
            " where (? is null or f.attempt = ?) and (? is null or f.purpose = ?)"
            " order by f.attempt, f.purpose desc, f.part"
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

    def record_intent(self, path: str) -> str:
        """Durably note that a create for `path` is about to be sent; returns the intent time."""
        at = now_iso()
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

    def set_status(self, batch_id: str, status: BatchStatus, note: str | None = None) -> None:
        with self._connect() as con:
            con.execute(
                "update batches set status = ?, note = coalesce(?, note), updated_at = ?"
                " where batch_id = ?",
                (status, note, now_iso(), batch_id),
            )


def _record(r: tuple[Any, ...]) -> BatchRecord:
    counts = orjson.loads(r[14]) if r[14] else None
    return BatchRecord(
        file=RequestFile(*r[:7]),
        status=BatchStatus(r[7]) if r[7] else None,
        intent_at=r[8],
        batch_id=r[9],
        created_at=r[10],
        expires_at=r[11],
        ended_at=r[12],
        processing_status=r[13],
        request_counts=counts,
        note=r[15],
    )
