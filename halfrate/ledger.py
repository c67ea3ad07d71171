"""The job ledger: which request files exist and what became of each one's batch.

One SQLite file per job; `Ledger` is typed access to it, in four parts:
- `halfrate.ledger_file`: the schema, the migration of files written by earlier versions,
  connections (`Ledger(path)` opens a ledger and never creates one; `Ledger.create(path)`);
- `halfrate.ledger_records`: the record types, and the statuses of a file's batch in order;
- `halfrate.ledger_batches`: the request files and their batches (each batch recorded as an
  intent before its create is sent, so a crash at any point says what to do next);
- `halfrate.ledger_marks`: user and system cancels, foreign batches, key/value markers.
"""

from halfrate.ledger_batches import BatchRecords
from halfrate.ledger_file import SCHEMA, LedgerMissingError
from halfrate.ledger_marks import CANCEL_KEY, RESTART_KEY, LedgerMarks
from halfrate.ledger_records import (
    CLOSED,
    REALTIME,
    UNSENT,
    BatchRecord,
    BatchStatus,
    RequestFile,
    now_iso,
)

__all__ = [  # names other modules import from here (they live in the modules above)
    "CANCEL_KEY",
    "CLOSED",
    "REALTIME",
    "RESTART_KEY",
    "SCHEMA",
    "UNSENT",
    "BatchRecord",
    "BatchStatus",
    "Ledger",
    "LedgerMissingError",
    "RequestFile",
    "now_iso",
]


class Ledger(BatchRecords, LedgerMarks):
    """Typed access to one job's ledger file; every write is its own transaction.

    `Ledger(path)` opens an existing ledger and raises `LedgerMissingError` if there is none
    (also when the file disappears later); `Ledger.create(path)` makes a new one.
    """

    def unadoptable_batch_ids(self) -> set[str]:
        """Ids a reconciliation must never adopt: this ledger's own and its foreign ones."""
        return self.known_batch_ids() | self.foreign_batch_ids()
