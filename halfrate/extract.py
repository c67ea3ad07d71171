"""Extract: read the job's source with Polars, keep valid rows, quarantine the rest with a reason.

Writes extract/rows.parquet (row_number, row_id, text[, gold]) and extract/quarantine.parquet
(row_number, row_id, reason), then extract/source.json (the source fingerprint and the summary)
as the commit point. A rerun against an unchanged source reuses the files; a changed source is
an error, because requests already built from the old rows must never mix with new ones.
"""

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from halfrate.config import JobConfig
from halfrate.settings import Settings
from halfrate.workspace import JobPaths, write_atomic

log = logging.getLogger(__name__)

FILE_FORMATS = {
    ".csv": "CSV",
    ".parquet": "Parquet",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
}
FULL_HASH_MAX_BYTES = 256 << 20  # above this, fingerprint size + mtime + first/last MiB
SAMPLE_BYTES = 1 << 20
DUPLICATE_ROWS_SHOWN = 10
DOCS_PER_CHUNK = 512
BATCH_BYTES = 8 << 20  # rows per batch when copying a Parquet source: about this many bytes
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class ExtractError(ValueError):
    """The source cannot be extracted; the message names the file and what to do."""


class ExtractSummary(BaseModel):
    """What extract found: counts, quarantine reasons, and whether earlier output was reused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_rows: int
    """Rows in the source (documents, for a folder)."""
    valid_rows: int
    """Rows written to extract/rows.parquet."""
    quarantined_rows: int
    """Rows written to extract/quarantine.parquet."""
    reasons: dict[str, int]
    """Quarantined rows per reason kind (a row with two problems counts under both)."""
    reused: bool = False
    """True when an earlier extract of the same unchanged source was reused."""


def extract_rows(job: JobConfig, paths: JobPaths, settings: Settings) -> ExtractSummary:
    """Extract the job's source into rows.parquet and quarantine.parquet (or reuse them).

    Args:
        job: The job; `source`, `id_column`, `text_column` and `gold_column` are used.
        paths: The job folder.
        settings: `max_text_chars` is the longest text kept.

    Returns:
        Row counts and quarantine reasons.

    Raises:
        ExtractError: The source is missing, unsupported, empty, lacks a column, cannot be
            parsed, or changed since this job first extracted it.
    """
    source = job.source
    fingerprint = source_fingerprint(source)
    state_file = paths.rows.parent / "source.json"
    if state_file.exists():
        state = orjson.loads(state_file.read_bytes())
        _check_same_source(source, state, fingerprint, settings)
        if paths.rows.exists() and paths.quarantine.exists():
            log.info("extract: reusing %s (source unchanged)", paths.rows)
            return ExtractSummary.model_validate(state["summary"] | {"reused": True})
    with _temp_files(paths) as (rows_tmp, quarantine_tmp, docs_tmp):
        scanned = _scan_source(job, docs_tmp)
        summary = _validate_and_write(scanned, job, settings, rows_tmp, quarantine_tmp)
        if source_fingerprint(source) != fingerprint:
            raise ExtractError(f"{source}: the source changed while it was being read; rerun")
        for tmp, final in ((rows_tmp, paths.rows), (quarantine_tmp, paths.quarantine)):
            _fsync(tmp)  # source.json below vouches for these files: they must be on disk
            os.replace(tmp, final)
    state = {
        "source": str(source),
        "fingerprint": fingerprint,
        "max_text_chars": settings.max_text_chars,
        "summary": summary.model_dump(exclude={"reused"}),
    }
    write_atomic(state_file, orjson.dumps(state, option=orjson.OPT_INDENT_2))
    log.info("extract: %d rows valid, %d quarantined", summary.valid_rows, summary.quarantined_rows)
    return summary


def source_fingerprint(source: Path) -> dict[str, Any]:
    """Identify the source's content: a hash of a file, or of a folder's file list."""
    if not source.exists():
        raise ExtractError(f"{source}: source not found; check the job's `source` path")
    if source.is_dir():
        listing = [[name, p.stat().st_size, p.stat().st_mtime_ns] for name, p in _documents(source)]
        digest = hashlib.sha256(orjson.dumps(listing)).hexdigest()
        return {"kind": "folder", "files": len(listing), "listing_sha256": digest}
    if source.suffix.lower() not in FILE_FORMATS:
        raise ExtractError(
            f"{source}: unsupported file type {source.suffix!r}; use .csv, .parquet, "
            ".jsonl or .ndjson, or a folder of text documents"
        )
    stat = source.stat()
    if stat.st_size <= FULL_HASH_MAX_BYTES:
        return {"kind": "file", "size": stat.st_size, "sha256": _sha256(source)}
    with open(source, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        fh.seek(-SAMPLE_BYTES, os.SEEK_END)
        tail = fh.read(SAMPLE_BYTES)
    sample = hashlib.sha256(head + tail).hexdigest()
    return {"kind": "file", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sample": sample}


def _check_same_source(
    source: Path, state: dict[str, Any], fingerprint: dict[str, Any], settings: Settings
) -> None:
    if state["fingerprint"] != fingerprint:
        raise ExtractError(
            f"{source}: the source changed since this job first extracted it; rerun with "
            "--restart to start the job over, or give the job a new name"
        )
    if state["max_text_chars"] != settings.max_text_chars:
        raise ExtractError(
            f"{source}: this job was extracted with max_text_chars={state['max_text_chars']}, "
            f"now {settings.max_text_chars}; restore the setting, or rerun with --restart"
        )


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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


@dataclass(frozen=True)
class _Scanned:
    """The source as a lazy frame of row_number, row_id, text (+ gold), in source order."""

    frame: pl.LazyFrame
    columns: dict[str, str]
    """Our column name -> the source's column name."""
    parquet: Path | None
    """The Parquet file behind the frame, if any (read in bounded batches with pyarrow)."""


def _scan_source(job: JobConfig, docs_tmp: Path) -> _Scanned:
    source = job.source
    parquet: Path | None = None
    if source.is_dir():
        if job.gold_column:
            raise ExtractError(
                f"{source}: a folder source has no columns, so gold_column "
                f"{job.gold_column!r} cannot be read; remove gold_column from the job"
            )
        _stage_documents(source, docs_tmp)
        frame, parquet = pl.scan_parquet(docs_tmp), docs_tmp
        columns = {"row_id": "row_id", "text": "text"}
    else:
        frame = _scan_file(source, job)
        parquet = source if FILE_FORMATS[source.suffix.lower()] == "Parquet" else None
        columns = {"row_id": job.id_column, "text": job.text_column}
        if job.gold_column:
            columns["gold"] = job.gold_column
    return _Scanned(_select(frame, columns, offset=1), columns, parquet)


def _select(frame: FrameT, columns: dict[str, str], offset: int) -> FrameT:
    selected = frame.select(
        *(pl.col(col).cast(pl.String).alias(name) for name, col in columns.items())
    )
    return selected.with_row_index("row_number", offset=offset)


def _scan_file(source: Path, job: JobConfig) -> pl.LazyFrame:
    wanted = [c for c in (job.id_column, job.text_column, job.gold_column) if c]
    kind = FILE_FORMATS[source.suffix.lower()]
    if source.stat().st_size == 0:
        raise ExtractError(f"{source}: the file is empty; give it rows (and a header for CSV)")
    try:
        if kind == "CSV":
            frame = pl.scan_csv(source, infer_schema=False, raise_if_empty=True)
        elif kind == "Parquet":
            frame = pl.scan_parquet(source)
        else:
            frame = pl.scan_ndjson(source)
        available = frame.collect_schema().names()
        if kind == "JSON Lines":  # inference sees only the first lines: read our columns as text
            overrides = {c: pl.String for c in wanted if c in available}
            frame = pl.scan_ndjson(source, schema_overrides=overrides)
    except pl.exceptions.NoDataError:
        raise ExtractError(f"{source}: the file is empty; give it a header and rows") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(source, exc) from None
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ExtractError(
            f"{source}: column(s) {', '.join(map(repr, missing))} not found; available columns: "
            f"{', '.join(available) or '(none)'}. Set id_column / text_column / gold_column"
        )
    return frame


def _unreadable(source: Path, exc: Exception) -> ExtractError:
    kind = FILE_FORMATS.get(source.suffix.lower(), "documents")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = "check that it is valid, UTF-8 encoded " + kind
    if "utf-8" in first_line.lower():
        hint = "it is not UTF-8: convert it (e.g. iconv -f latin1 -t utf-8) and rerun"
    return ExtractError(f"{source}: could not read it as {kind} ({first_line}); {hint}")


def _documents(folder: Path) -> list[tuple[str, Path]]:
    """Non-hidden files under a folder, sorted by their relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath, name)
                found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def _stage_documents(folder: Path, target: Path) -> None:
    """Write a folder's documents (one row each) to a Parquet file, a chunk at a time."""
    schema = pa.schema([("row_id", pa.string()), ("text", pa.string())])
    docs = _documents(folder)
    if not docs:
        raise ExtractError(f"{folder}: the folder has no (non-hidden) files; nothing to extract")
    with pq.ParquetWriter(target, schema) as writer:
        for start in range(0, len(docs), DOCS_PER_CHUNK):
            chunk = docs[start : start + DOCS_PER_CHUNK]
            texts = [_decode(path.read_bytes()) for _, path in chunk]
            ids = [name for name, _ in chunk]
            writer.write_table(pa.table({"row_id": ids, "text": texts}, schema=schema))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _validate_and_write(
    scanned: _Scanned, job: JobConfig, settings: Settings, rows_tmp: Path, quarantine_tmp: Path
) -> ExtractSummary:
    frame = scanned.frame
    try:
        # Duplicate detection needs every id at once: this collects the id column and small
        # per-row facts (never the texts), then streams the valid rows straight to Parquet.
        if scanned.parquet is None:
            facts = _facts(frame).collect(engine="streaming")
        else:
            facts = pl.concat([_facts(rows) for rows in _parquet_batches(scanned)], rechunk=True)
        if facts.height == 0:
            raise ExtractError(f"{job.source}: the file has no rows; add rows below the header")
        quarantine = _quarantine(facts, job, settings)
        mean_chars = facts["text_chars"].mean()
        row_bytes = 64 + 2 * int(mean_chars if isinstance(mean_chars, float) else 0)
        group_rows = max(64, min(65_536, BATCH_BYTES // row_bytes))
        _write_rows(scanned, quarantine["row_number"], rows_tmp, group_rows)
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise _unreadable(job.source, exc) from None
    quarantine.drop("kinds").write_parquet(quarantine_tmp)
    kinds = quarantine["kinds"].explode().value_counts(sort=True)
    return ExtractSummary(
        source_rows=facts.height,
        valid_rows=facts.height - quarantine.height,
        quarantined_rows=quarantine.height,
        reasons={k: int(n) for k, n in kinds.iter_rows()},
    )


def _facts(frame: FrameT) -> FrameT:
    """Small per-row facts for validation (never the texts themselves)."""
    return frame.select(
        "row_number",
        "row_id",
        id_ok=pl.col("row_id").str.contains(r"\S").fill_null(False),
        text_ok=pl.col("text").str.contains(r"\S").fill_null(False),
        text_chars=pl.col("text").str.len_chars(),
    )


def _parquet_batches(scanned: _Scanned) -> Iterator[pl.DataFrame]:
    """The Parquet source as selected frames of a few MB each.

    Polars' streaming Parquet reader reads far ahead (a 1.4 GB peak measured for 1M rows of
    1.5 KB); pyarrow's batch reader holds one batch at a time.
    """
    assert scanned.parquet is not None
    source = pq.ParquetFile(scanned.parquet, pre_buffer=False, buffer_size=1 << 20)
    meta = source.metadata
    row_bytes = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    batch_rows = max(1, min(16_384, BATCH_BYTES * max(meta.num_rows, 1) // max(row_bytes, 1)))
    wanted = list(dict.fromkeys(scanned.columns.values()))
    offset = 1
    for batch in source.iter_batches(batch_size=batch_rows, columns=wanted):
        yield _select(pl.DataFrame(batch), scanned.columns, offset)
        offset += batch.num_rows


def _write_rows(scanned: _Scanned, bad: pl.Series, target: Path, group_rows: int) -> None:
    """Write the source rows whose row_number is not in `bad`, streaming.

    The sink buffers a whole row group, so row groups are sized to ~8 MB: with Polars'
    default a 1M-row CSV of 1.5 KB texts peaked at 1.2 GB, with this at ~0.5 GB.
    """
    keep = ~pl.col("row_number").is_in(bad.implode())
    if scanned.parquet is None:
        scanned.frame.filter(keep).sink_parquet(target, row_group_size=group_rows)
        return
    schema = scanned.frame.head(0).collect().to_arrow().schema
    with pq.ParquetWriter(target, schema) as writer:
        for rows in _parquet_batches(scanned):
            writer.write_table(rows.filter(keep).to_arrow().cast(schema))


def _quarantine(facts: pl.DataFrame, job: JobConfig, settings: Settings) -> pl.DataFrame:
    """One row per rejected source row: row_number, row_id, reason (and its kinds)."""
    limit = settings.max_text_chars
    # Group only ids whose 8-byte hash repeats: grouping all the strings costs ~200 MB per 1M.
    maybe_repeated = pl.col("id_ok") & pl.col("row_id").hash().is_duplicated()
    duplicates = (
        facts.filter(maybe_repeated)
        .group_by("row_id")
        .agg(pl.col("row_number").sort(), n=pl.len())
        .filter(pl.col("n") > 1)
        .select(
            "row_id",
            duplicate=pl.format(
                "duplicate id '{}' in rows {}{}",
                "row_id",
                pl.col("row_number")
                .list.head(DUPLICATE_ROWS_SHOWN)
                .cast(pl.List(pl.String))
                .list.join(", "),
                pl.when(pl.col("n") > DUPLICATE_ROWS_SHOWN)
                .then(pl.format(" and {} more", pl.col("n") - DUPLICATE_ROWS_SHOWN))
                .otherwise(pl.lit("")),
            ),
        )
    )
    checks = {
        "missing id": pl.when(~pl.col("id_ok")).then(
            pl.lit(f"missing id: column {job.id_column!r} is empty")
        ),
        "duplicate id": pl.col("duplicate"),
        "missing text": pl.when(~pl.col("text_ok")).then(
            pl.lit(f"missing text: column {job.text_column!r} is empty or blank")
        ),
        "text too long": pl.when(pl.col("text_chars") > limit).then(
            pl.format(f"text too long: {{}} characters, the limit is {limit}", "text_chars")
        ),
    }
    suspect = (
        ~pl.col("id_ok")
        | ~pl.col("text_ok")
        | (pl.col("text_chars") > limit)
        | pl.col("row_id").is_in(duplicates["row_id"].implode())
    )
    return (
        facts.filter(suspect)
        .join(duplicates, on="row_id", how="left", maintain_order="left")
        .with_columns(**{kind: check for kind, check in checks.items()})
        .filter(pl.any_horizontal(pl.col(kind).is_not_null() for kind in checks))
        .select(
            "row_number",
            "row_id",
            reason=pl.concat_str(list(checks), separator="; ", ignore_nulls=True),
            kinds=pl.concat_list(
                pl.when(pl.col(kind).is_not_null()).then(pl.lit(kind)) for kind in checks
            ).list.drop_nulls(),
        )
    )
