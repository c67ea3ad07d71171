"""Build requests: stream rows from Parquet into JSONL request files, one file per future batch.

The parts: `halfrate.build_ids` (custom_ids, BuildError), `halfrate.build_template` (a request
line serialized once, each row spliced in), `halfrate.build_writer` (the files, cut at the
limits, written on a background thread), `halfrate.build_index` (index files, unique ids).
"""

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from halfrate.build_ids import (
    CUSTOM_ID_PREFIX_BYTES,
    HASH_BYTES,
    RAW_KEY,
    REQUEST_KEY,
    BuildError,
    custom_id_for,
    custom_ids_for,
)
from halfrate.build_template import (
    BLOCKS_MESSAGE_BYTES,
    BODY_OVERHEAD,
    RequestTemplate,
    message_json,
    request_for,
)
from halfrate.build_writer import MAX_BLOCKS_IN_FLIGHT, PURPOSES, RequestWriter
from halfrate.config import CacheTTL, JobConfig
from halfrate.ledger import Ledger, RequestFile
from halfrate.progress_hooks import step
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

__all__ = [
    "BATCH_LINE_BYTES",
    "BLOCKS_MESSAGE_BYTES",
    "BODY_OVERHEAD",
    "CUSTOM_ID_PREFIX_BYTES",
    "HASH_BYTES",
    "MAX_BLOCKS_IN_FLIGHT",
    "PURPOSES",
    "RAW_KEY",
    "READ_BATCH_ROWS",
    "REQUEST_KEY",
    "BuildError",
    "RequestTemplate",
    "build_requests",
    "custom_id_for",
    "custom_ids_for",
    "message_json",
    "request_for",
]

log = logging.getLogger(__name__)

BATCH_LINE_BYTES = 3 << 20  # rows are read and encoded in batches of about this many bytes
READ_BATCH_ROWS = 4096  # the most rows in one batch


def build_requests(
    job: JobConfig,
    paths: JobPaths,
    ledger: Ledger,
    attempt: int,
    rows: Path,
    settings: Settings,
    prime: bool,
    pilot: Sequence[str] = (),
) -> list[RequestFile]:
    """Write the request files of one attempt and register them in the ledger.

    Idempotent: an attempt whose files are already in the ledger is returned as it is. Otherwise
    files are written under temporary names, synced and renamed; registering them in the ledger
    is the commit point, and a crash before it rebuilds the same bytes.

    Args:
        job: The job; its kind picks the params builder.
        paths: The job folder; files go to requests/a<attempt>/.
        ledger: The job's ledger.
        attempt: 1 for the first round, 2.. for retries.
        rows: Parquet with row_id and text (or content: the JSON of content blocks), in the
            order to send.
        settings: `max_requests_per_batch` and `max_batch_bytes` cut the files.
        prime: Send the first row alone in prime.jsonl (to warm the prompt cache); ignored when
            caching is off or there are fewer than two rows.
        pilot: Row ids whose requests go to pilot-<NNNN>.jsonl (purpose `pilot`, sent and
            measured before the rest: halfrate/pilot.py); the main files hold the other rows.

    Returns:
        The request files in ledger order: the prime file first, then the pilot's, then
        part 1, 2, ...

    Raises:
        BuildError: Bad rows file, a null row id or text, a request larger than the body
            limit, or two rows with the same custom_id.
    """
    existing = ledger.records(attempt=attempt)
    if existing:
        return [record.file for record in existing]
    folder = paths.requests_dir(attempt)
    _remove_unregistered(folder)
    template = RequestTemplate(job)
    n_rows, column, batches = _read_rows(rows, len(template.head) + len(template.middle))
    prime = prime and n_rows >= 2 and job.cache_ttl is not CacheTTL.none
    folder.mkdir(parents=True, exist_ok=True)
    builder = RequestWriter(paths, folder, attempt, settings, template, blocks=column == "content")
    try:
        sample = pa.array(list(pilot), pa.string()) if pilot else None
        with step(f"build attempt {attempt}", n_rows, "requests") as progress:
            files = builder.write_all(batches, prime, sample, progress)
        builder.check_unique()
    except BaseException:
        builder.abort()
        _remove_unregistered(folder)
        raise
    _fsync_dir(folder)
    ledger.add_request_files(files)
    log.info("build: attempt %d, %d requests in %d files", attempt, n_rows, len(files))
    return files


def _read_rows(rows: Path, line_overhead: int) -> tuple[int, str, Iterator[pa.RecordBatch]]:
    """The line count, the content column, and (row_id, content[, request]) batches that
    bound memory (`request`: the request key, when the kind sends several per row)."""
    try:
        parquet = pq.ParquetFile(rows, pre_buffer=False, buffer_size=1 << 20)
    except (OSError, pa.ArrowException) as exc:
        raise BuildError(f"{rows}: cannot read the rows file ({exc}); rerun extract") from None
    names = parquet.schema_arrow.names
    column = "content" if "content" in names else "text"
    missing = [c for c in ("row_id", column) if c not in names]
    if missing:
        raise BuildError(f"{rows}: missing column(s) {missing}; it has {names}")
    meta = parquet.metadata
    text_bytes = sum(
        meta.row_group(g).column(names.index(column)).total_uncompressed_size
        for g in range(meta.num_row_groups)
    )
    line_bytes = line_overhead + text_bytes // max(meta.num_rows, 1)
    batch_rows = max(1, min(READ_BATCH_ROWS, BATCH_LINE_BYTES // line_bytes))
    columns = ["row_id", column, *(["request"] if "request" in names else [])]
    batches = parquet.iter_batches(batch_size=batch_rows, columns=columns)
    return meta.num_rows, column, batches


def _remove_unregistered(folder: Path) -> None:
    """Remove request files no ledger entry knows of (left by a crash); keep todo.parquet."""
    if not folder.exists():
        return
    for pattern in (
        "part-*.jsonl",
        "part-*.index.parquet",
        "pilot-*.jsonl",
        "pilot-*.index.parquet",
        "prime.jsonl",
        "prime.index.parquet",
    ):
        for path in folder.glob(pattern):
            path.unlink()
    for path in folder.glob(".*.tmp"):
        path.unlink()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
