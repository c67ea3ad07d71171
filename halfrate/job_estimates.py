"""The warehouse's `job_estimates`: a job's static estimate and its pilot's projection.

Both are kept in the job folder (estimate.json, pilot.json); `sync_estimates` replaces the
job's rows with what those files hold (delete + insert in one transaction), so loading them
again, or after a restart removed a pilot, leaves exactly the current ones. The view
`job_estimate_errors` sets each next to the job's actual cost.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from halfrate.cost_model import Bracket, CostEstimate
from halfrate.estimate import load_estimate
from halfrate.pilot_report import PilotReport, load_report
from halfrate.warehouse import run_sql


def sync_estimate_files(
    con: duckdb.DuckDBPyConnection,
    job_name: str,
    estimate_file: Path,
    pilot_file: Path,
    realtime: bool = False,
) -> None:
    """`sync_estimates` from the job folder's estimate.json and pilot.json (`realtime`: a
    `mode: realtime` job, whose static estimate is its real-time figure)."""
    static_at = None
    if estimate_file.exists():
        static_at = datetime.fromtimestamp(estimate_file.stat().st_mtime, UTC)
    static, report = load_estimate(estimate_file), load_report(pilot_file)
    sync_estimates(con, job_name, static, report, static_at, realtime)


def sync_estimates(
    con: duckdb.DuckDBPyConnection,
    job_name: str,
    static: CostEstimate | None,
    pilot: PilotReport | None,
    static_at: datetime | None = None,
    realtime: bool = False,
) -> None:
    """Make the job's rows of `job_estimates` those of `static` (made at `static_at`) and
    `pilot` (either may be missing)."""
    rows: list[dict[str, Any]] = []
    if static is not None:
        detail = {"prime": static.prime, "counted": static.profile.counted, "model": static.model}
        bracket = static.realtime if realtime else static.batch
        rows.append(_row("static", bracket, static.n_requests, None, static_at, detail))
    if pilot is not None:
        detail = pilot.pilot.model_dump(mode="json") | {"problems": list(pilot.problems)}
        rows.append(_row("pilot", pilot.projected, None, pilot.pilot.rows, pilot.made_at, detail))
    con.begin()
    try:
        run_sql(con, "load/delete_job_estimates", {"job_name": job_name})
        for row in rows:
            run_sql(con, "load/insert_job_estimate", {"job_name": job_name, **row})
    except BaseException:
        con.rollback()
        raise
    con.commit()


def _row(
    estimate: str,
    bracket: Bracket,
    requests: int | None,
    sample_rows: int | None,
    made_at: datetime | None,
    detail: dict[str, Any],
) -> dict[str, Any]:
    made = (made_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return {
        "estimate": estimate,
        "low_usd": bracket.low,
        "expected_usd": bracket.expected,
        "high_usd": bracket.high,
        "requests": requests,
        "sample_rows": sample_rows,
        "made_at": made,
        "detail": orjson.dumps(detail).decode(),
    }
