"""Retry rounds: which rows of one attempt go into the next.

Decided from staged files only (the parsed results and the request indexes), never from the
warehouse, so a warehouse held open by someone else cannot stall or change a job.
"""

import os
from pathlib import Path

import polars as pl

from halfrate.ledger import CLOSED, BatchStatus, Ledger
from halfrate.workspace import JobPaths

# Outcomes (see halfrate.results) that another attempt may fix. `failed` (invalid_request_error)
# is final: resending the same request would fail the same way.
RETRY_OUTCOMES = ("retriable", "invalid_output")
_DONE = (BatchStatus.downloaded, BatchStatus.loaded, *CLOSED)  # split/failed: no batch of their own


class RetryPlanError(RuntimeError):
    """An attempt cannot be planned because the previous one is not fully downloaded."""


def plan_retry(paths: JobPaths, ledger: Ledger, attempt: int) -> Path | None:
    """Write the rows attempt `attempt` must resend (row_id, text or content) and return it.

    Returns None when nothing needs another try. Idempotent: a plan already written is reused,
    so a resumed job resends exactly the rows it planned before.
    """
    todo = paths.todo_file(attempt)
    if todo.exists():
        return todo if pl.scan_parquet(todo).select(pl.len()).collect().item() else None
    previous = ledger.records(attempt=attempt - 1)
    pending = [r.file.path for r in previous if r.status not in _DONE]
    if pending:
        raise RetryPlanError(
            f"attempt {attempt - 1} still has batches that are not downloaded: {pending[:3]}"
        )
    frame = _retry_rows(paths, [(r.file.path, r.batch_id) for r in previous if r.batch_id])
    todo.parent.mkdir(parents=True, exist_ok=True)
    tmp = todo.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, todo)  # the plan appears whole or not at all
    return todo if frame.height else None


def _retry_rows(paths: JobPaths, batches: list[tuple[str, str]]) -> pl.DataFrame:
    """The rows (and, for kinds with several requests per row, the requests) to resend."""
    rows = pl.scan_parquet(paths.rows)
    names = rows.collect_schema().names()
    content = "content" if "content" in names else "text"
    keys = ["row_id", "request"] if "request" in names else ["row_id"]
    empty = pl.DataFrame(schema=dict.fromkeys([keys[0], content, *keys[1:]], pl.Utf8))
    if not batches:
        return empty
    index = pl.concat(
        [pl.scan_parquet(paths.index_file(f)) for f, _ in batches], how="diagonal_relaxed"
    )
    if "request" not in index.collect_schema().names():  # written before request keys
        index = index.with_columns(request=pl.lit("", pl.String))
    parsed = pl.concat(
        [pl.scan_parquet(paths.outcomes_file(b)).select("custom_id", "outcome") for _, b in batches]
    )
    # A request the deadline canceled and real time then answered has two results in the
    # attempt: it is retried only when every answer it got asks for it.
    retry_ids = (
        parsed.group_by("custom_id")
        .agg(pl.col("outcome").is_in(RETRY_OUTCOMES).all().alias("retry"))
        .filter("retry")
        .join(index.select("custom_id", *keys), on="custom_id", how="inner")
        .select(keys)
    )
    return (
        rows.select(*keys, content, "row_number")
        .join(retry_ids, on=keys, how="semi")
        .sort("row_number", maintain_order=True)
        .select(keys[0], content, *keys[1:])
        .collect()
    )
