"""The ledger's SQLite file: its schema, the migration of older files, and connections to it.

One SQLite file per job (stdlib, WAL). The ledger file is created once, when a job is opened
(`Ledger.create`); every step opens it with `Ledger(path)`, which never creates one: a job
folder deleted under a running job stops the job instead of starting an empty ledger that
would send every row again.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Self

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


class LedgerMissingError(RuntimeError, ActionableError):
    """The job's ledger file is gone (the job folder was deleted or moved)."""


class LedgerFile:
    """One job's ledger file, opened (never created) and migrated; one transaction per write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._open()) as con:
            con.execute("pragma journal_mode=wal")
            _migrate(con)

    @classmethod
    def create(cls, path: Path) -> Self:
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

    def transaction(self) -> "AbstractContextManager[sqlite3.Connection]":
        """One write transaction on the ledger file (for tables other modules keep in it)."""
        return self._connect()


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
