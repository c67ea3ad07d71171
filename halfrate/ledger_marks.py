"""The ledger's marks beside the batch records: cancels, foreign batches, key/value markers.

Besides the batches, the ledger keeps: `foreign_batches`, batches a reconciliation adopted by
mistake (their results are not this file's): never adopted again and never canceled;
`user_cancels`, batches canceled at the user's request; `system_cancels`, batches halfrate
canceled at the job's deadline (their rows are finished in real time); and `meta`
(key/value), which holds a pending user cancel, when the job was restarted and first
submitted, and a held submission (queue backpressure).
"""

from halfrate.ledger_file import LedgerFile
from halfrate.ledger_records import BatchStatus, now_iso

CANCEL_KEY = "cancel_requested_at"
RESTART_KEY = "restarted_at"


class LedgerMarks(LedgerFile):
    """The ledger's `foreign_batches`, `user_cancels`, `system_cancels` and `meta` tables."""

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
