"""Job sources: `source: job:<name>` reads another (finished) job's outputs.

The upstream job's outputs (its kind's output table: labels, generations, ...) joined to its
source rows by row_id (halfrate/export.py) become the chained job's source, materialised into
its folder (extract/upstream.parquet) like a staged folder of documents: the columns are the
upstream source's own, plus row_id (the id_column default), prompt (what the upstream job
sent) and its output columns (a generate job's `text`). Everything is read before anything
is sent, the warehouse read-only.

The source's fingerprint is the upstream job's identity: its settings, its source's
fingerprint and the batches its outputs come from. An upstream job that is rerun with new
batches (restarted, or resumed after a cancel) changes it, so the chained job refuses to mix
old and new outputs, as for a changed file.
"""

from pathlib import Path
from typing import Any

import orjson

from halfrate.config import JobConfig
from halfrate.export import ExportFormat, write_joined
from halfrate.kinds import kind_of
from halfrate.settings import Settings
from halfrate.sources import ExtractError
from halfrate.sql import load_sql
from halfrate.status import read_job
from halfrate.warehouse import connect
from halfrate.workspace import job_paths

PENDING_SHOWN = 5


def upstream_fingerprint(name: str, settings: Settings) -> dict[str, Any]:
    """Check that job `name` exists and is finished, and identify its outputs.

    Raises:
        ExtractError: no such job, it has not run (or loaded) yet, rows of it are not in a
            final state, or its kind's outputs cannot be a source.
    """
    upstream = _upstream_job(name, settings)
    state_file = job_paths(settings.workdir, name).rows.parent / "source.json"
    if not state_file.is_file() or not settings.warehouse.exists():
        raise _unfinished(name, "it has not extracted and loaded its rows yet")
    with connect(
        settings.warehouse, read_only=True, retry_seconds=settings.load_retry_seconds
    ) as con:
        row = con.execute(load_sql("chain/upstream_state"), {"job_name": name}).fetchone()
    known, pending, examples, batch_ids = row or (False, 0, [], [])
    if not known:
        raise _unfinished(name, "nothing of it is in the warehouse yet")
    if pending:
        shown = ", ".join(map(repr, examples)) + (" ..." if pending > len(examples) else "")
        raise _unfinished(name, f"{pending} of its rows are still pending ({shown})")
    return {
        "kind": "job",
        "job": name,
        "settings": upstream.fingerprint(),
        "source": orjson.loads(state_file.read_bytes())["fingerprint"],
        "batches": list(batch_ids),
    }


def write_upstream_rows(name: str, settings: Settings, out: Path) -> None:
    """Materialise job `name`'s outputs joined to its source rows to the Parquet file `out`."""
    write_joined(_upstream_job(name, settings), settings, out, ExportFormat.parquet)


def _upstream_job(name: str, settings: Settings) -> JobConfig:
    where = f"source job:{name}"
    try:
        upstream = read_job(settings.workdir, name)
    except FileNotFoundError as exc:
        raise ExtractError(f"{where}: {exc}; run that job first, or fix the name") from None
    if not kind_of(upstream).one_output_per_row:
        raise ExtractError(
            f"{where}: a {upstream.kind} job has several output rows per source row, so it "
            f"cannot be a source; export it (`halfrate export {name}`) and read the file"
        )
    return upstream


def _unfinished(name: str, why: str) -> ExtractError:
    return ExtractError(
        f"source job:{name}: that job is not finished: {why}. Run it to the end first "
        "(`halfrate run UPSTREAM.yaml THIS.yaml` runs both, in order); this job sends "
        "nothing until then"
    )
