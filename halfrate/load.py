"""Idempotent loads of a job's staged files into the warehouse.

Every load replaces what an earlier load of the same thing wrote (delete + insert in one
transaction), so loading a batch twice, or after a crash half-way, changes nothing. Results
join back to source rows through the request index, by custom_id, never by position.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from halfrate.config import JobConfig
from halfrate.kinds import kind_of
from halfrate.ledger import BatchRecord, Ledger
from halfrate.results import copy_parsed, parse_into
from halfrate.sql import load_sql
from halfrate.warehouse import run_sql
from halfrate.workspace import JobPaths


class LoadError(RuntimeError):
    """Staged files that cannot be loaded as they are; the message names the file."""


class ExtractCounts(Protocol):
    """What load_job needs from extract's summary (halfrate.extract.ExtractSummary fits)."""

    @property
    def valid_rows(self) -> int: ...

    @property
    def quarantined_rows(self) -> int: ...


def load_job(
    con: duckdb.DuckDBPyConnection,
    job: JobConfig,
    paths: JobPaths,
    ledger: Ledger,
    extract: ExtractCounts,
) -> None:
    """Upsert the job, its rows (without text) and quarantine, and every batch the ledger knows."""
    for path in (paths.rows, paths.quarantine):
        if not path.is_file():
            raise LoadError(f"{path}: staged extract file missing; run the extract step first")
    n_rows = staged_rows(paths.rows)
    n_quarantined = pq.read_metadata(paths.quarantine).num_rows
    if (n_rows, n_quarantined) != (extract.valid_rows, extract.quarantined_rows):
        raise LoadError(
            f"{paths.rows}: holds {n_rows} rows and {n_quarantined} quarantined, but extract "
            f"reported {extract.valid_rows} and {extract.quarantined_rows}; rerun extract"
        )
    names = pq.read_schema(paths.rows).names
    kind = kind_of(job)
    params = {"job_name": job.name}
    with _transaction(con):
        run_sql(
            con,
            "load/upsert_job",
            {
                **params,
                "kind": job.kind,
                "model": job.model,
                "fingerprint": job.fingerprint(),
                "config": job.model_dump_json(),
                "source": str(job.source),
                "max_attempts": job.max_attempts,
                "request_keys": list(kind.request_keys(job)),
                "n_rows": n_rows,
                "n_quarantined": n_quarantined,
                "now": _now(),
            },
        )
        run_sql(con, "load/delete_job_rows", params)
        _insert_rows(con, paths.rows, names, {**params, "request": kind.request_keys(job)[0]})
        run_sql(con, "load/delete_quarantine", params)
        run_sql(con, "load/insert_quarantine", {**params, "path": str(paths.quarantine)})
        batch_ids = sorted(ledger.known_batch_ids())
        for table in ("results", "requests", "outcomes", "batches"):
            run_sql(con, f"load/delete_stale_{table}", {"batch_ids": batch_ids, **params})
        kind.delete_stale(con, job, batch_ids)
        for record in ledger.records():
            if record.batch_id is not None:
                _upsert_batch(con, job, record)


def _insert_rows(
    con: duckdb.DuckDBPyConnection, rows: Path, names: list[str], params: dict[str, Any]
) -> None:
    """job_rows from the rows file: each row once (its first request's line, if keyed)."""
    if "request" in names:
        run_sql(con, "load/insert_job_rows_keyed", {**params, "path": str(rows)})
        return
    sql = "load/insert_job_rows" if "gold" in names else "load/insert_job_rows_no_gold"
    run_sql(con, sql, {"job_name": params["job_name"], "path": str(rows)})


def staged_rows(rows: Path) -> int:
    """The source rows a rows file holds (it has a line per row, or per row and request)."""
    if "request" not in pq.read_schema(rows).names:
        return int(pq.read_metadata(rows).num_rows)
    numbers = pq.read_table(rows, columns=["row_number"]).column(0)
    return int(pc.count_distinct(numbers).as_py())


def load_batch(
    con: duckdb.DuckDBPyConnection, job: JobConfig, paths: JobPaths, record: BatchRecord
) -> int:
    """Load one downloaded batch (its row, requests and results) and refresh its rows' outcomes.

    The raw results file is parsed straight into the batch's transaction (read once, no
    intermediate file), and each result's retry outcome is staged beside it for the retry
    plan. The job's kind then lands the batch in its own tables, if it has any. Returns the
    number of results loaded; loading the same batch again replaces its rows with identical
    ones.
    """
    batch_id = record.batch_id
    if batch_id is None:
        raise LoadError(f"{record.file.path}: has no batch yet; submit it before loading")
    index = paths.index_file(record.file.path)
    raw = paths.results_file(batch_id)
    if not index.is_file():
        raise LoadError(f"{index}: request index missing; rebuild the requests of this attempt")
    batch: dict[str, Any] = {"batch_id": batch_id}
    params: dict[str, Any] = {"batch_id": batch_id, "job_name": job.name}
    with _transaction(con):
        _upsert_batch(con, job, record)
        run_sql(con, "load/delete_batch_requests", batch)
        run_sql(con, "load/insert_batch_requests", {**params, "path": str(index)})
        run_sql(con, "load/delete_batch_results", batch)
        parsed = parse_into(con, raw, job, batch_id)
        run_sql(con, "load/insert_batch_results")
        copy_parsed(con, "parse/copy_outcomes", paths.outcomes_file(batch_id))
        run_sql(con, "parse/drop_parsed")
        _refuse_orphans(con, batch_id, raw, index)
        run_sql(con, "load/delete_batch_outcomes", params)
        run_sql(con, "load/insert_batch_outcomes", batch)
        kind_of(job).load_batch(con, job, batch_id)
    return parsed.rows


def _refuse_orphans(con: duckdb.DuckDBPyConnection, batch_id: str, raw: Path, index: Path) -> None:
    con.execute(load_sql("load/orphan_results"), {"batch_id": batch_id})
    orphans, example = con.fetchone() or (0, None)
    if orphans:
        raise LoadError(
            f"{raw}: {orphans} results have a custom_id that is not in {index} "
            f"(e.g. {example!r}); the results do not belong to this request file: "
            "check the ledger's batch id for it, then download the batch again"
        )


def _upsert_batch(con: duckdb.DuckDBPyConnection, job: JobConfig, record: BatchRecord) -> None:
    counts = record.request_counts or {}
    run_sql(
        con,
        "load/upsert_batch",
        {
            "batch_id": record.batch_id,
            "job_name": job.name,
            "attempt": record.file.attempt,
            "purpose": record.file.purpose,
            "request_file": record.file.path,
            "n_requests": record.file.n_requests,
            "body_bytes": record.file.body_bytes,
            "created_at": _utc(record.created_at),
            "expires_at": _utc(record.expires_at),
            "ended_at": _utc(record.ended_at),
            "processing_status": record.processing_status,
            "processing_count": counts.get("processing"),
            "succeeded_count": counts.get("succeeded"),
            "errored_count": counts.get("errored"),
            "canceled_count": counts.get("canceled"),
            "expired_count": counts.get("expired"),
            "ledger_status": record.status.value if record.status else None,
            "now": _now(),
            "mode": record.mode,
        },
    )


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


def _utc(value: str | None) -> datetime | None:
    """An API timestamp ('2024-09-24T18:37:24.100435Z') as a naive UTC datetime."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
