"""A job's outputs joined to its source rows: `halfrate export`, and what a job source reads.

Three steps, each bounded in memory: the job's kind writes its outputs from the warehouse
(read-only) to Parquet (`Kind.write_outputs`); Polars writes the job's valid rows with the
source's own columns (row_number, row_id, prompt: what the job sent, then every source
column); DuckDB joins the two by row_id with COPY into Parquet, CSV or JSON Lines
(sql/export/). A source column whose name an output column (or row_number, row_id, prompt)
takes is kept as `source_<name>`.
"""

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pyarrow.parquet as pq

from halfrate.config import JobConfig
from halfrate.errors import ActionableError
from halfrate.kinds import kind_of
from halfrate.progress_hooks import StepProgress, step
from halfrate.settings import Settings
from halfrate.sources import scan_source, source_fingerprint
from halfrate.sql import load_sql
from halfrate.status import read_job
from halfrate.warehouse import connect
from halfrate.workspace import JobPaths, job_paths

ROW_COLUMNS = ("row_number", "row_id", "prompt")
"""What every exported row starts with: its place in the source, its id, what it sent."""
EXPORT_PHASES = ("reading its outputs", "reading its source rows", "joining and writing them")
"""What an export does, in order (each one bounded in memory, none with a row count to tell)."""


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"

    @property
    def sql(self) -> str:
        return "export/json" if self is ExportFormat.jsonl else f"export/{self.value}"


class ExportError(ValueError, ActionableError):
    """A job that cannot be exported (not run yet, source changed); the message says why."""


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: int
    columns: list[str]


def export_job(
    name: str, settings: Settings, fmt: ExportFormat, out: Path | None = None
) -> Exported:
    """Write job `name`'s outputs joined to its source rows to `out` (default:
    <workdir>/../exports/<name>.<format>), atomically."""
    job = read_job(settings.workdir, name)
    if not settings.warehouse.exists():
        raise ExportError(f"no warehouse at {settings.warehouse}: run job {name!r} first")
    file_name = f"{name}.{fmt.value}"
    out = out or settings.workdir.parent / "exports" / file_name
    return write_joined(job, settings, writable(out / file_name if out.is_dir() else out), fmt)


def writable(out: Path) -> Path:
    """`out`, once its folder exists and can be written (a clear error before any work)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot create its folder ({exc.strerror})") from None
    probe = out.with_name(f".{out.name}.{os.getpid()}.probe")  # what the export will do
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write there ({exc.strerror})") from None
    return out


def write_joined(job: JobConfig, settings: Settings, out: Path, fmt: ExportFormat) -> Exported:
    """The job's outputs joined to its source rows, written to `out` (atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = {n: out.with_name(f".{out.name}.{n}.{os.getpid()}.tmp") for n in ("o", "s", "d", "x")}
    try:
        with step(f"export {job.name}", len(EXPORT_PHASES), "steps") as progress:
            rows = _join(job, settings, tmp, fmt, progress)
        outputs = pq.read_schema(tmp["o"]).names
        columns = pq.read_schema(tmp["s"]).names + [c for c in outputs if c != "row_id"]
        os.replace(tmp["x"], out)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return Exported(out, rows, columns)


def _join(
    job: JobConfig,
    settings: Settings,
    tmp: dict[str, Path],
    fmt: ExportFormat,
    progress: StepProgress,
) -> int:
    """Write the outputs (tmp o), the source rows (tmp s) and their join (tmp x); the rows."""
    phases = iter(EXPORT_PHASES)
    progress.describe(f"export {job.name}: {next(phases)}")
    wait = settings.load_retry_seconds
    with connect(settings.warehouse, read_only=True, retry_seconds=wait) as con:
        kind_of(job).write_outputs(con, job, tmp["o"])
    progress.advance(1)
    progress.describe(f"export {job.name}: {next(phases)}")
    taken = set(pq.read_schema(tmp["o"]).names) | set(ROW_COLUMNS)
    write_source_rows(job, job_paths(settings.workdir, job.name), taken, tmp["s"], tmp["d"])
    progress.advance(1)
    progress.describe(f"export {job.name}: {next(phases)}")
    params = {"source_rows": str(tmp["s"]), "outputs": str(tmp["o"])}
    with duckdb.connect() as joiner:
        joiner.execute("set enable_progress_bar = false")
        # COPY answers the number of rows it wrote: no second join to count them
        copied = joiner.execute(load_sql(fmt.sql), params | {"out": str(tmp["x"])})
        (rows,) = copied.fetchone() or (0,)
    progress.advance(1)
    return int(rows)


def write_source_rows(
    job: JobConfig, paths: JobPaths, taken: set[str], out: Path, docs_tmp: Path
) -> None:
    """The job's valid rows (its extract) with their source columns, to Parquet `out`."""
    if not paths.rows.is_file():
        raise ExportError(f"job {job.name!r} has not been extracted yet: run it first")
    rows = pl.scan_parquet(paths.rows)
    names = rows.collect_schema().names()
    if "request" in names:  # a line per row and request: the row once
        rows = rows.filter(pl.col("request") == kind_of(job).request_keys(job)[0])
    prompt = pl.col("text") if "text" in names else pl.lit(None, pl.String)
    rows = rows.select("row_number", "row_id", prompt.alias("prompt"))
    source, id_column = _source_frame(job, paths, docs_tmp)
    source = source.with_columns(pl.col(id_column).cast(pl.String).alias("\x00row_id"))
    if id_column == "row_id":  # a job source's: the same as ours
        source = source.drop("row_id")
    columns = source.collect_schema().names()
    renamed = {c: f"source_{c}" for c in columns if c in taken}
    joined = rows.join(source.rename(renamed), left_on="row_id", right_on="\x00row_id")
    joined.sort("row_number").sink_parquet(out)


def _source_frame(job: JobConfig, paths: JobPaths, docs_tmp: Path) -> tuple[pl.LazyFrame, str]:
    """The job's source as it was extracted (a job source: what it read then) and its id."""
    if job.upstream is not None:  # the upstream's row numbers are not this job's
        return pl.scan_parquet(paths.upstream_rows).drop("row_number"), job.id_column
    state = paths.rows.parent / "source.json"
    if state.is_file() and orjson.loads(state.read_bytes())["fingerprint"] != source_fingerprint(
        job.source
    ):
        raise ExportError(
            f"{job.source}: the source changed since job {job.name!r} extracted it, so its rows "
            "can no longer be matched to it; restore the source, or rerun the job with --restart"
        )
    scanned = scan_source(job.source, [job.id_column], docs_tmp)
    return scanned.frame, "path" if scanned.folder else job.id_column
