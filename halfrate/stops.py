"""Rows that end without a result of their own: canceled by the user, or refused alone (413).

The ledger knows both (`user_cancels`, and request files with status `failed`); each load
copies them to the warehouse tables `user_cancels` and `unsent_requests` (delete + insert per
job, so loading twice changes nothing), where `row_outcomes` turns them into the final states
`canceled` ("canceled by the user") and `failed` (with the API's reason).
"""

from datetime import UTC, datetime

import duckdb

from halfrate.ledger import BatchStatus, Ledger
from halfrate.warehouse import run_sql
from halfrate.workspace import JobPaths


def load_stops(
    con: duckdb.DuckDBPyConnection, job_name: str, paths: JobPaths, ledger: Ledger
) -> None:
    """Replace the job's user cancels and unsent requests in the warehouse with the ledger's."""
    params = {"job_name": job_name}
    con.begin()
    try:
        run_sql(con, "load/delete_job_user_cancels", params)
        for batch_id, at in sorted(ledger.user_cancels().items()):
            run_sql(
                con,
                "load/insert_user_cancel",
                {**params, "batch_id": batch_id, "canceled_at": _naive(at)},
            )
        run_sql(con, "load/delete_job_unsent_requests", params)
        for record in ledger.records():
            if record.status is BatchStatus.failed:
                run_sql(
                    con,
                    "load/insert_unsent_requests",
                    {
                        **params,
                        "request_file": record.file.path,
                        "reason": record.note or "refused by the API",
                        "path": str(paths.index_file(record.file.path)),
                    },
                )
    except BaseException:
        con.rollback()
        raise
    con.commit()


def _naive(value: str) -> datetime:
    """A ledger timestamp ('...Z') as the naive UTC datetime the warehouse stores."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None)
