"""Emulator state on disk: SQLite (stdlib) for batches, audit, cache and clock; files for bodies.

Layout under the data directory::

    state.sqlite3                  batches, audits (creates, Messages calls), cache entries,
                                   meta (clock anchors)
    batches/<id>/requests.jsonl    one compact request per line, as submitted
    batches/<id>/custom_ids.txt    the custom_ids in submission order (for the audit)
    batches/<id>/results.jsonl     written once the batch has ended
    spool/                         create bodies while they are uploaded

The store does no locking of its own: the service serialises access to it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

_SCHEMA = """
create table if not exists batches (
    seq integer primary key autoincrement,
    id text unique not null,
    created_at real not null,
    request_count integer not null,
    bytes integer not null,
    version text not null,
    processing_seconds real not null,
    cancel_seconds real not null,
    faults text not null,
    cancel_initiated_at real,
    forced_end_at real,
    forced_expire_at real,
    transient_404_left integer not null default 0,
    counts text,
    deleted integer not null default 0
);
create table if not exists audit (
    seq integer primary key autoincrement,
    batch_id text not null,
    request_count integer not null,
    bytes integer not null,
    created_at real not null,
    response_dropped integer not null default 0
);
create table if not exists cache (
    key text not null,
    source text not null,
    batch_id text,
    written_at real not null,
    expires_at real not null,
    ttl real not null,
    primary key (key, source)
);
create table if not exists messages_audit (
    seq integer primary key autoincrement,
    digest text not null,
    model text not null,
    input_tokens integer not null,
    output_tokens integer not null,
    created_at real not null,
    held integer not null default 0
);
create table if not exists meta (name text primary key, value text not null);
"""


@dataclass
class BatchRow:
    """One row of `batches` (virtual epoch seconds for every time)."""

    seq: int
    id: str
    created_at: float
    request_count: int
    bytes: int
    version: str
    processing_seconds: float
    cancel_seconds: float
    faults: str
    cancel_initiated_at: float | None
    forced_end_at: float | None
    forced_expire_at: float | None
    transient_404_left: int
    counts: str | None
    deleted: int


_COLUMNS = [f.name for f in fields(BatchRow)]


class Store:
    """SQLite plus per-batch files under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.batches_dir = data_dir / "batches"
        self.spool_dir = data_dir / "spool"
        for folder in (self.batches_dir, self.spool_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.spool_dir.iterdir():  # uploads cut short by a kill never committed
            leftover.unlink(missing_ok=True)
        self.db = sqlite3.connect(data_dir / "state.sqlite3", check_same_thread=False)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def batch_dir(self, batch_id: str) -> Path:
        """The folder holding one batch's files."""
        return self.batches_dir / batch_id

    def insert_batch(self, row: dict[str, Any]) -> None:
        """Insert a new batch (every column but seq)."""
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.db:
            self.db.execute(f"insert into batches ({names}) values ({marks})", list(row.values()))

    def get_batch(self, batch_id: str) -> BatchRow | None:
        """A batch by id, deleted ones included."""
        cur = self.db.execute(f"select {', '.join(_COLUMNS)} from batches where id = ?", [batch_id])
        found = cur.fetchone()
        return BatchRow(*found) if found else None

    def page(self, after_seq: int | None, before_seq: int | None, limit: int) -> list[BatchRow]:
        """Live batches newest first; `after_seq` pages to older, `before_seq` to newer ones."""
        cols = ", ".join(_COLUMNS)
        if before_seq is not None:
            sql = (
                f"select {cols} from batches where deleted = 0 and seq > ? order by seq asc limit ?"
            )
            rows = self.db.execute(sql, [before_seq, limit]).fetchall()
            return [BatchRow(*r) for r in reversed(rows)]
        bound = after_seq if after_seq is not None else 2**62
        sql = f"select {cols} from batches where deleted = 0 and seq < ? order by seq desc limit ?"
        return [BatchRow(*r) for r in self.db.execute(sql, [bound, limit]).fetchall()]

    def pending_except(self, seq: int) -> list[BatchRow]:
        """Live, not yet finalised batches other than `seq` (candidates to finalise first)."""
        cols = ", ".join(_COLUMNS)
        sql = f"select {cols} from batches where deleted = 0 and counts is null and seq != ?"
        return [BatchRow(*r) for r in self.db.execute(sql, [seq]).fetchall()]

    def update_batch(self, batch_id: str, **values: Any) -> None:
        """Set columns of one batch."""
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.db:
            self.db.execute(
                f"update batches set {assignments} where id = ?", [*values.values(), batch_id]
            )

    def add_audit(self, batch_id: str, count: int, size: int, created_at: float) -> None:
        """Record a committed create."""
        with self.db:
            self.db.execute(
                "insert into audit (batch_id, request_count, bytes, created_at) values (?, ?, ?, ?)",
                [batch_id, count, size, created_at],
            )

    def mark_dropped(self, batch_id: str) -> None:
        """Note in the audit that this create's response was never delivered."""
        with self.db:
            self.db.execute("update audit set response_dropped = 1 where batch_id = ?", [batch_id])

    def audit_rows(self) -> list[tuple[Any, ...]]:
        """(batch_id, request_count, bytes, created_at, response_dropped) per create, in order."""
        sql = "select batch_id, request_count, bytes, created_at, response_dropped from audit"
        return self.db.execute(sql + " order by seq").fetchall()

    def add_message_audit(
        self, digest: str, model: str, usage: tuple[int, int], at: float, held: bool
    ) -> None:
        """Record an answered (paid) Messages call: its body's digest, model and tokens."""
        with self.db:
            self.db.execute(
                "insert into messages_audit (digest, model, input_tokens, output_tokens,"
                " created_at, held) values (?, ?, ?, ?, ?, ?)",
                [digest, model, *usage, at, int(held)],
            )

    def message_audit_rows(self) -> list[tuple[Any, ...]]:
        """(digest, model, input_tokens, output_tokens, created_at, held) per call, in order."""
        sql = (
            "select digest, model, input_tokens, output_tokens, created_at, held"
            " from messages_audit order by seq"
        )
        return self.db.execute(sql).fetchall()

    def cache_rows(
        self, keys: list[str], source: str
    ) -> dict[str, tuple[str | None, float, float]]:
        """key -> (batch_id, written_at, expires_at) for the given keys and source."""
        found: dict[str, tuple[str | None, float, float]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            sql = f"select key, batch_id, written_at, expires_at from cache where source = ? and key in ({marks})"
            for key, batch_id, written, expires in self.db.execute(sql, [source, *chunk]):
                found[key] = (batch_id, written, expires)
        return found

    def put_cache(
        self, entries: Sequence[tuple[str, str, str | None, float, float, float]]
    ) -> None:
        """Upsert (key, source, batch_id, written_at, expires_at, ttl) entries."""
        with self.db:
            self.db.executemany("insert or replace into cache values (?, ?, ?, ?, ?, ?)", entries)

    def refresh_cache(self, refreshes: list[tuple[float, str, str]]) -> None:
        """A read refreshes an entry's TTL: (read time, key, source)."""
        with self.db:
            self.db.executemany(
                "update cache set expires_at = max(expires_at, ? + ttl) where key = ? and source = ?",
                refreshes,
            )

    def get_meta(self, name: str) -> str | None:
        """A value from the meta table."""
        found = self.db.execute("select value from meta where name = ?", [name]).fetchone()
        return str(found[0]) if found else None

    def set_meta(self, name: str, value: str) -> None:
        """Store a value in the meta table."""
        with self.db:
            self.db.execute("insert or replace into meta values (?, ?)", [name, value])

    def reset(self) -> None:
        """Forget every batch, audit row, cache entry and clock offset."""
        with self.db:
            for table in ("batches", "audit", "messages_audit", "cache", "meta"):
                self.db.execute(f"delete from {table}")
            self.db.execute("delete from sqlite_sequence")
        shutil.rmtree(self.batches_dir, ignore_errors=True)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
