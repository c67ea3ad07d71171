"""The record of every real-time Messages call, kept in the job's ledger file.

The Messages API has no idempotency key and no way to look a call up: an answer lost on the
way (a timeout, a dropped connection, a crash) may still have been paid for. So each request
of a real-time pseudo-batch is recorded before each call (`sending`, one more call) and its
answer right after (`answered`, with its results line), in the ledger's SQLite file with
`synchronous=full`. On resume a request still `sending` lost its answer with the process
(`settle_interrupted` counts it as lost). `lost` counts the calls that may have been charged
without an answer we kept: each one is a possible double charge, shown in the job's costs.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from halfrate.ledger import Ledger, now_iso
from halfrate.warehouse import run_sql

SCHEMA = """
create table if not exists realtime_requests (
    batch_id text not null,         -- the real-time pseudo-batch (rt_...)
    custom_id text not null,
    state text not null,            -- sending | answered | refused | lost
    calls integer not null,         -- calls sent for it
    lost integer not null,          -- calls whose answer never came (each may have been paid)
    sent_at text,                   -- the last call's
    answered_at text,
    result text,                    -- its line in the batch results format, once answered
    primary key (batch_id, custom_id)
)
"""


@dataclass(frozen=True)
class CallState:
    state: str
    calls: int
    lost: int


class RealtimeLog:
    """Typed access to `realtime_requests`; every write is its own durable transaction."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        with ledger.transaction() as con:
            con.execute(SCHEMA)

    def states(self, batch_id: str) -> dict[str, CallState]:
        with self.ledger.transaction() as con:
            rows = con.execute(
                "select custom_id, state, calls, lost from realtime_requests where batch_id = ?",
                (batch_id,),
            ).fetchall()
        return {r[0]: CallState(r[1], r[2], r[3]) for r in rows}

    def sending(self, batch_id: str, custom_id: str) -> None:
        """Durably note that a call for `custom_id` is about to be sent."""
        with self.ledger.transaction() as con:
            con.execute(
                "insert into realtime_requests (batch_id, custom_id, state, calls, lost, sent_at)"
                " values (?, ?, 'sending', 1, 0, ?) on conflict (batch_id, custom_id) do update"
                " set state = 'sending', calls = calls + 1, sent_at = excluded.sent_at",
                (batch_id, custom_id, now_iso()),
            )

    def answered(self, batch_id: str, custom_id: str, line: bytes) -> None:
        """Its answer (or the final error standing for one) as its results line."""
        with self.ledger.transaction() as con:
            con.execute(
                "insert into realtime_requests (batch_id, custom_id, state, calls, lost,"
                " answered_at, result) values (?, ?, 'answered', 0, 0, ?, ?)"
                " on conflict (batch_id, custom_id) do update set state = 'answered',"
                " answered_at = excluded.answered_at, result = excluded.result",
                (batch_id, custom_id, now_iso(), line.decode()),
            )

    def refused(self, batch_id: str, custom_id: str) -> None:
        """The API answered the call with an error: nothing was charged for it."""
        self._set(batch_id, custom_id, "state = 'refused'")

    def lost(self, batch_id: str, custom_id: str) -> None:
        """The call's answer never came: it may have been charged."""
        self._set(batch_id, custom_id, "state = 'lost', lost = lost + 1")

    def settle_interrupted(self, batch_id: str) -> int:
        """Calls a killed process left `sending` lost their answers: count them; how many."""
        with self.ledger.transaction() as con:
            return con.execute(
                "update realtime_requests set state = 'lost', lost = lost + 1"
                " where batch_id = ? and state = 'sending'",
                (batch_id,),
            ).rowcount

    def result_lines(self, batch_id: str) -> Iterator[bytes]:
        """Every answered request's results line (one page of rows in memory at a time)."""
        last = ""
        while True:
            with self.ledger.transaction() as con:
                rows = con.execute(
                    "select custom_id, result from realtime_requests where batch_id = ?"
                    " and state = 'answered' and custom_id > ? order by custom_id limit 512",
                    (batch_id, last),
                ).fetchall()
            if not rows:
                return
            for _, result in rows:
                yield result.encode() + b"\n"
            last = rows[-1][0]

    def lost_calls(self) -> list[tuple[str, str, int]]:
        """(batch_id, custom_id, lost) of every request with a call that may have been paid."""
        with self.ledger.transaction() as con:
            return con.execute(
                "select batch_id, custom_id, lost from realtime_requests where lost > 0"
                " order by batch_id, custom_id"
            ).fetchall()

    def _set(self, batch_id: str, custom_id: str, assignment: str) -> None:
        with self.ledger.transaction() as con:
            con.execute(
                f"update realtime_requests set {assignment} where batch_id = ? and custom_id = ?",
                (batch_id, custom_id),
            )


def load_lost_calls(con: duckdb.DuckDBPyConnection, job_name: str, ledger: Ledger) -> None:
    """Replace the job's rows of the warehouse's `lost_calls` with the ledger's (idempotent)."""
    rows = RealtimeLog(ledger).lost_calls()
    con.begin()
    try:
        run_sql(con, "load/delete_job_lost_calls", {"job_name": job_name})
        for batch_id, custom_id, lost in rows:
            params = {"batch_id": batch_id, "custom_id": custom_id, "lost_calls": lost}
            run_sql(con, "load/insert_lost_call", {"job_name": job_name, **params})
    except BaseException:
        con.rollback()
        raise
    con.commit()
