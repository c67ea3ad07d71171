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
A file may also be sent in real time (`mode` 'realtime': a job's `mode: realtime`, or past its
deadline): its "batch" is then a real-time pseudo-batch `rt_...` that halfrate itself runs
(halfrate/realtime.py): `submitted` while its requests are being sent, `downloaded` once every
answer is in its results file.
And two ends of a file the API refused as too large (413), where nothing was created:
  split       replaced by its two halves (request files whose `parent` is this one)
  failed      a single request the API refuses even alone; the note says why

The ledger file is created once, when a job is opened (`Ledger.create`); every step opens it
with `Ledger(path)`, which never creates one: a job folder deleted under a running job stops
the job instead of starting an empty ledger that would send every row again.

Besides the batches, the ledger keeps: `foreign_batches`, batches a reconciliation adopted by
mistake (their results are not this file's): never adopted again and never canceled;
`user_cancels`, batches canceled at the user's request; `system_cancels`, batches halfrate
canceled at the job's deadline (their rows are finished in real time); and `meta`
(key/value), which holds a pending user cancel, when the job was restarted and first
submitted, and a held submission (queue backpressure).
"""

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from halfrate.errors import ActionableError

SCHEMA = """
create table if not exists request_files (
    path text primary key,          -- relative to the job folder
    attempt integer not null,
    part integer not null,
    purpose text not null,          -- 'prime' (cache warm-up), 'pilot' (sampled rows) or 'main'
    n_requests integer not null,
    body_bytes integer not null,    -- size of the create body that will be sent
    sha256 text not null,
    created_at text not null,
    parent text                     -- the file a 413 split this one from
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
    updated_at text not null,
    mode text                       -- 'realtime': a real-time pseudo-batch; null: a batch
);
create table if not exists foreign_batches (
    batch_id text primary key,
    path text not null,             -- the file it was wrongly adopted for
    reason text not null,
    released_at text not null
);
create table if not exists user_cancels (
    batch_id text primary key,
    canceled_at text not null
);
create table if not exists system_cancels (
    batch_id text primary key,      -- canceled by halfrate itself (the deadline), not the user
    reason text not null,
    canceled_at text not null
);
create table if not exists meta (key text primary key, value text not null);
"""
CANCEL_KEY = "cancel_requested_at"
RESTART_KEY = "restarted_at"


class LedgerMissingError(RuntimeError, ActionableError):
    """The job's ledger file is gone (the job folder was deleted or moved)."""


class BatchStatus(StrEnum):
    intent = "intent"
    submitted = "submitted"
    ended = "ended"
    downloaded = "downloaded"
    loaded = "loaded"
    split_up = "split"  # (not `split`: that would hide str.split)
    failed = "failed"


_COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")
UNSENT = (None, BatchStatus.intent)
"""Statuses of a file that still needs a create (or a reconciliation)."""
CLOSED = (BatchStatus.split_up, BatchStatus.failed)
"""Statuses of a file that will never have a batch of its own."""


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


REALTIME = "realtime"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Ledger:
    """Typed access to one job's ledger file; every write is its own transaction.

    `Ledger(path)` opens an existing ledger and raises `LedgerMissingError` if there is none
    (also when the file disappears later); `Ledger.create(path)` makes a new one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._open()) as con:
            con.execute("pragma journal_mode=wal")
            _migrate(con)

    @classmethod
    def create(cls, path: Path) -> "Ledger":
        """Create the ledger file (and its folder) if it does not exist, then open it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=60)) as con:
            con.execute("pragma journal_mode=wal")
        return cls(path)

    def _open(self) -> sqlite3.Connection:
        # mode=rw: never create the file; a deleted ledger is an error, not a fresh start.
        uri = f"{self.path.absolute().as_uri()}?mode=rw"
        try:
            return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
        except sqlite3.OperationalError:
            raise LedgerMissingError(_missing(self.path)) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(self._open()) as con:
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

    def transaction(self) -> "AbstractContextManager[sqlite3.Connection]":
        """One write transaction on the ledger file (for tables other modules keep in it)."""
        return self._connect()

    # -- batches halfrate canceled at the deadline --------------------------------------------

    def record_system_cancel(self, batch_id: str, reason: str) -> None:
        with self._connect() as con:
            con.execute(
                "insert or ignore into system_cancels values (?, ?, ?)",
                (batch_id, reason, now_iso()),
            )

    def system_cancels(self) -> dict[str, str]:
        """Batches halfrate canceled itself (at the job's deadline), with why."""
        with self._connect() as con:
            return dict(con.execute("select batch_id, reason from system_cancels").fetchall())

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

    # -- adoptions that turned out wrong ------------------------------------------------------

    def release_foreign(self, path: str, batch_id: str, reason: str) -> None:
        """A batch adopted for `path` is not its batch: remember it as foreign, and put the file
        back to an intent (with its original time) so the next submit reconciles again."""
        at = now_iso()
        with self._connect() as con:
            con.execute(
                "insert or replace into foreign_batches values (?, ?, ?, ?)",
                (batch_id, path, reason, at),
            )
            con.execute(
                "update batches set status = ?, batch_id = null, created_at = null,"
                " expires_at = null, ended_at = null, processing_status = null,"
                " request_counts = null, note = ?, updated_at = ? where path = ? and batch_id = ?",
                (BatchStatus.intent, f"released {batch_id}: {reason}", at, path, batch_id),
            )

    def foreign_batch_ids(self) -> set[str]:
        with self._connect() as con:
            return {r[0] for r in con.execute("select batch_id from foreign_batches")}

    def unadoptable_batch_ids(self) -> set[str]:
        """Ids a reconciliation must never adopt: this ledger's own and its foreign ones."""
        return self.known_batch_ids() | self.foreign_batch_ids()

    def has_batches(self) -> bool:
        """Whether any create was ever recorded (an intent, a batch, a split...)."""
        with self._connect() as con:
            return int(con.execute("select count(*) from batches").fetchone()[0]) > 0

    # -- user cancels and other job-level markers ---------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._connect() as con:
            row = con.execute("select value from meta where key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        with self._connect() as con:
            if value is None:
                con.execute("delete from meta where key = ?", (key,))
            else:
                con.execute("insert or replace into meta values (?, ?)", (key, value))

    def request_cancel(self, batch_ids: list[str]) -> None:
        """Record the user's cancel (job-wide, and for each batch) before the API is asked."""
        at = now_iso()
        with self._connect() as con:
            con.execute("insert or replace into meta values (?, ?)", (CANCEL_KEY, at))
            for batch_id in batch_ids:
                con.execute("insert or ignore into user_cancels values (?, ?)", (batch_id, at))

    def cancel_requested(self) -> str | None:
        """When the user canceled the job (None: no cancel pending)."""
        return self.get_meta(CANCEL_KEY)

    def user_cancels(self) -> dict[str, str]:
        """Batches canceled at the user's request, with when."""
        with self._connect() as con:
            return dict(con.execute("select batch_id, canceled_at from user_cancels").fetchall())


def _migrate(con: sqlite3.Connection) -> None:
    """Create missing tables and columns (ledgers written by earlier versions lack some)."""
    con.executescript(SCHEMA)  # its own transaction
    columns = {r[1] for r in con.execute("pragma table_info(request_files)")}
    if "parent" not in columns:
        con.execute("alter table request_files add column parent text")
    if "mode" not in {r[1] for r in con.execute("pragma table_info(batches)")}:
        con.execute("alter table batches add column mode text")  # null: a batch


def _missing(path: Path) -> str:
    return (
        f"the job's ledger {path} is missing: its folder was deleted or moved while the job "
        "had started. halfrate stops here and sends nothing, so no row is paid for twice. "
        f"Run `halfrate recover {path.parent.name}` to rebuild the ledger from the warehouse "
        "and the API's batch list, then rerun the job."
    )


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
