"""The DuckDB warehouse: connecting (with a wait when another process holds the file) and the schema.

DuckDB lets one process write a database file at a time. A job that finds the file held (a
user's query session, another job) waits with backoff, then gives up with WarehouseBusyError:
the staged files stay on disk, so the load can simply be run again.
"""

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from halfrate.kinds import KINDS
from halfrate.sql import load_sql

# DDL in dependency order; each is a file in sql/ (tables first, then views).
SCHEMA_TABLES = (
    "schema/jobs",
    "schema/batches",
    "schema/requests",
    "schema/results",
    "schema/outcomes",
    "schema/job_rows",
    "schema/quarantine",
    "schema/prices",
    "schema/user_cancels",
    "schema/unsent_requests",
    "schema/lost_calls",
    "schema/job_estimates",
)
SCHEMA_VIEWS = (
    "marts/row_outcomes",
    "marts/batch_costs",
    "marts/job_costs",
    "marts/job_estimate_errors",
)
KIND_TABLES = tuple(name for kind in KINDS.values() for name in kind.tables)
KIND_VIEWS = tuple(name for kind in KINDS.values() for name in kind.views)


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse file for longer than we were willing to wait."""


def connect(
    path: Path,
    *,
    read_only: bool = False,
    retry_seconds: float = 120,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, retrying with backoff while another process holds its lock."""
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no warehouse here yet; run a job first to create it")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + retry_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            # No progress bars: they would land in task logs and CLI output on long loads.
            con.execute("set enable_progress_bar = false")
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseBusyError(
                    f"{path}: the warehouse file is locked by another process (waited "
                    f"{retry_seconds:g} s; DuckDB says: {exc}). Nothing is lost: the staged files "
                    "are kept and the load will be retried: close the other session, then rerun "
                    "the job or `halfrate load`."
                ) from None
            sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> None:
    """Execute sql/<name>.sql with named DuckDB parameters."""
    con.execute(load_sql(name), params or {})


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables (if missing), refresh the price table and (re)create the views.

    Every kind's tables and views are created, whichever kinds the warehouse's jobs have, so
    queries on them (e.g. `labels`) work on any warehouse.
    """
    con.begin()
    try:
        for name in SCHEMA_TABLES + KIND_TABLES:
            run_sql(con, name)
        _migrate(con)
        with resources.as_file(resources.files("halfrate") / "prices.csv") as prices:
            run_sql(con, "load/delete_prices")
            run_sql(con, "load/insert_prices", {"path": str(prices)})
        for name in SCHEMA_VIEWS + KIND_VIEWS:
            run_sql(con, name)
    except BaseException:
        con.rollback()
        raise
    con.commit()


MIGRATIONS = (
    "migrate/add_jobs_request_keys",
    "migrate/add_requests_request",
    "migrate/add_outcomes_request",
    "migrate/add_unsent_requests_request",
    "migrate/add_batches_mode",
)
"""Columns added since: each a no-op where the column exists."""


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring an older warehouse up to date: its `labels` table -> outcomes (before job kinds),
    the request keys of kinds that send several requests per row."""
    for name in MIGRATIONS:
        run_sql(con, name)
    (old,) = con.execute(load_sql("migrate/labels_is_a_table")).fetchone() or (False,)
    if old:
        run_sql(con, "migrate/copy_labels_to_outcomes")
        run_sql(con, "migrate/drop_labels_table")
        run_sql(con, "migrate/drop_results_label")
