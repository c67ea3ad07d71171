"""Extract: read the job's source with Polars, keep valid rows, quarantine the rest with a reason.

Writes extract/rows.parquet (row_number, row_id, text, and the kind's extra columns such as
label's gold) and extract/quarantine.parquet (row_number, row_id, reason), then
extract/source.json (the source fingerprint and the summary) as the commit point. `text` is
the job's prompt template rendered over the source's columns (halfrate/template.py), so it is
exactly what each request sends (a folder's PDFs and images: `content`, the JSON of its
content blocks; a kind with several requests per row: one line per row and request). A rerun
against an unchanged source reuses the files; a changed source is an error, because requests
already built from the old rows must never mix with new ones.

The parts: `halfrate.extract_scan` (the columns a job reads and what each row sends) and
`halfrate.extract_validate` (per-row facts, the quarantine, writing the rows).
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from halfrate.chain import upstream_fingerprint, write_upstream_rows
from halfrate.config import JobConfig
from halfrate.extract_scan import (
    check_columns,
    contents_of,
    job_columns,
    scan_job_source,
    size_check,
)
from halfrate.extract_validate import ExtractSummary, validate_and_write
from halfrate.settings import Settings
from halfrate.sources import ExtractError, file_size_changed, source_fingerprint
from halfrate.workspace import JobPaths, write_atomic

__all__ = [
    "ExtractError",
    "ExtractSummary",
    "check_columns",
    "check_source_unchanged",
    "extract_rows",
    "job_columns",
    "source_fingerprint",
]

log = logging.getLogger(__name__)


def extract_rows(job: JobConfig, paths: JobPaths, settings: Settings) -> ExtractSummary:
    """Extract the job's source into rows.parquet and quarantine.parquet (or reuse them).

    Args:
        job: The job; its `source`, `id_column`, prompt (or `text_column`) and its kind's
            extra columns (label: `gold_column`) are used.
        paths: The job folder.
        settings: `max_text_chars` is the longest text kept.

    Returns:
        Row counts and quarantine reasons.

    Raises:
        ExtractError: The source is missing, unsupported, empty, lacks a column (or a
            column the prompt names), cannot be parsed, or changed since this job first
            extracted it.
    """
    source = job.source
    fingerprint = _fingerprint(job, settings)
    state_file = paths.rows.parent / "source.json"
    if state_file.exists():
        state = orjson.loads(state_file.read_bytes())
        _check_same_source(source, state, fingerprint, settings)
        _check_same_limit(job, paths, state, settings)
        if paths.rows.exists() and paths.quarantine.exists():
            log.info("extract: reusing %s (source unchanged)", paths.rows)
            return ExtractSummary.model_validate(state["summary"] | {"reused": True})
    with _temp_files(paths) as (rows_tmp, quarantine_tmp, docs_tmp):
        if job.upstream is not None:  # another job's outputs, staged like documents
            write_upstream_rows(job.upstream, settings, docs_tmp)
        scanned = scan_job_source(job, docs_tmp, settings)
        summary = validate_and_write(scanned, job, settings, rows_tmp, quarantine_tmp)
        if _fingerprint(job, settings) != fingerprint:
            raise ExtractError(f"{source}: the source changed while it was being read; rerun")
        finals = [(rows_tmp, paths.rows), (quarantine_tmp, paths.quarantine)]
        if job.upstream is not None:  # kept: what the rows were read from (for export)
            finals.append((docs_tmp, paths.upstream_rows))
        for tmp, final in finals:
            _fsync(tmp)  # source.json below vouches for these files: they must be on disk
            os.replace(tmp, final)
    state = {
        "source": str(source),
        "fingerprint": fingerprint,
        "max_text_chars": settings.max_text_chars,
        "max_batch_bytes": settings.max_batch_bytes,
        "summary": summary.model_dump(exclude={"reused"}),
    }
    write_atomic(state_file, orjson.dumps(state, option=orjson.OPT_INDENT_2))
    log.info("extract: %d rows valid, %d quarantined", summary.valid_rows, summary.quarantined_rows)
    return summary


def _fingerprint(job: JobConfig, settings: Settings) -> dict[str, Any]:
    """The source's identity: a file's or folder's content, or a job source's upstream."""
    if job.upstream is not None:
        return upstream_fingerprint(job.upstream, settings)
    return source_fingerprint(job.source)


def check_source_unchanged(job: JobConfig, paths: JobPaths) -> None:
    """A cheap early test that the source is the one this job extracted (a file's size, a
    folder's listing); extract compares the full fingerprint (a file's hash) itself.

    A job source (`source: job:<name>`) is not tested here: its identity is read from the
    warehouse and, in a chain, the upstream job runs first. Extract compares it in full
    before anything is sent.
    """
    state_file = paths.rows.parent / "source.json"
    if job.upstream is not None or not state_file.exists():
        return
    recorded = orjson.loads(state_file.read_bytes())["fingerprint"]
    if job.source.is_dir() or recorded.get("kind") == "folder":
        if source_fingerprint(job.source) != recorded:
            raise _source_changed(job.source)
    elif file_size_changed(job.source, recorded):
        raise _source_changed(job.source)


def _source_changed(source: Path) -> ExtractError:
    return ExtractError(
        f"{source}: the source changed since this job first extracted it; put the original "
        "back, rerun with --restart to start the job over, or give the job a new name"
    )


def _check_same_source(
    source: Path, state: dict[str, Any], fingerprint: dict[str, Any], settings: Settings
) -> None:
    if state["fingerprint"] != fingerprint and fingerprint.get("kind") == "job":
        raise ExtractError(
            f"{source}: that job's outputs changed since this job first read them (it was "
            "rerun with new batches); rerun this job with --restart to judge the new outputs, "
            "or give it a new name"
        )
    if state["fingerprint"] != fingerprint:
        raise _source_changed(source)
    if state["max_text_chars"] != settings.max_text_chars:
        raise ExtractError(
            f"{source}: this job was extracted with max_text_chars={state['max_text_chars']}, "
            f"now {settings.max_text_chars}; restore the setting, or rerun with --restart"
        )


def _check_same_limit(
    job: JobConfig, paths: JobPaths, state: dict[str, Any], settings: Settings
) -> None:
    """A lower HALFRATE_MAX_BATCH_BYTES than the extract checked the rows against is refused
    when a row's request could now exceed it (never under the default limit, unless rows
    send PDFs or images)."""
    checked = state.get("max_batch_bytes", settings.max_batch_bytes)
    if settings.max_batch_bytes >= checked:
        return
    template, _ = job_columns(job)
    contents = contents_of(job, template, _sent_blocks(job, paths)).contents
    if size_check(job, contents, settings) is not None:
        raise ExtractError(
            f"{job.source}: this job's rows were checked against HALFRATE_MAX_BATCH_BYTES="
            f"{checked}, now {settings.max_batch_bytes}, and a row's request could be over it; "
            "restore the setting, or rerun with --restart"
        )


def _sent_blocks(job: JobConfig, paths: JobPaths) -> bool:
    """Whether the extracted rows send a folder's PDFs or images (if unknown: a folder may)."""
    if not job.source.is_dir():
        return False
    return not paths.rows.exists() or "content" in pq.read_schema(paths.rows).names


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextmanager
def _temp_files(paths: JobPaths) -> Iterator[tuple[Path, Path, Path]]:
    folder = paths.rows.parent
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    temps = tuple(folder / f".{name}.{pid}.tmp" for name in ("rows", "quarantine", "docs"))
    try:
        yield temps[0], temps[1], temps[2]
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
