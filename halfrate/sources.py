"""Sources: a job's `source` as a lazy Polars frame of its columns, and its fingerprint.

A file (.csv, .parquet, .jsonl/.ndjson) is scanned as it is. A folder of documents is staged
to a Parquet file first, one row per non-hidden file, with the columns `path` (relative to the
folder: the row id), `text` and an e-mail's headers, plus PDFs and images as base64 blocks and
what keeps a file out (halfrate/documents.py). Nothing here knows about job kinds or prompts:
extract picks the columns it needs and checks they exist.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from halfrate.documents import FOLDER_COLUMNS, stage_folder
from halfrate.errors import ActionableError

FILE_FORMATS = {
    ".csv": "CSV",
    ".parquet": "Parquet",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
}
FULL_HASH_MAX_BYTES = 256 << 20  # above this, fingerprint size + mtime + first/last MiB
SAMPLE_BYTES = 1 << 20


class ExtractError(ValueError, ActionableError):
    """The source cannot be extracted; the message names the file and what to do."""


@dataclass(frozen=True)
class Source:
    """A scanned source: its frame, the columns it has, and the Parquet file behind it."""

    frame: pl.LazyFrame
    columns: list[str]
    parquet: Path | None
    """The Parquet file behind the frame, if any (read in bounded batches with pyarrow)."""
    folder: bool
    blocks: bool = False
    """A folder with PDFs or images: its rows are sent as content blocks."""


def scan_source(source: Path, wanted: list[str], docs_tmp: Path) -> Source:
    """Scan a file, or stage a folder's documents to `docs_tmp` and scan that.

    `wanted` are the columns the job reads: JSON Lines reads them as text (schema inference
    sees only the first lines).
    """
    if source.is_dir():
        docs = _documents(source)
        if not docs:
            raise _no_documents(source)
        blocks = stage_folder(docs, docs_tmp)
        return Source(pl.scan_parquet(docs_tmp), list(FOLDER_COLUMNS), docs_tmp, True, blocks)
    frame, available = _scan_file(source, wanted)
    parquet = source if FILE_FORMATS[source.suffix.lower()] == "Parquet" else None
    return Source(frame, available, parquet, False)


def source_columns(source: Path) -> tuple[list[str], bool]:
    """The columns a source has, from its header or schema only (never its rows), and whether
    it is a folder (whose columns are always `path`, `text` and the `email_*` headers).

    Raises:
        ExtractError: The source is missing, of an unsupported type, empty, or unreadable.
    """
    _check_exists(source)
    if source.is_dir():
        if not _has_documents(source):
            raise _no_documents(source)
        return list(FOLDER_COLUMNS), True
    _check_type(source)
    return _scan_file(source, [])[1], False


def file_size_changed(source: Path, fingerprint: dict[str, Any]) -> bool:
    """Whether a file's size differs from its recorded fingerprint's (a cheap first test)."""
    return fingerprint.get("kind") == "file" and source.stat().st_size != fingerprint.get("size")


def _check_exists(source: Path) -> None:
    if not source.exists():
        raise ExtractError(
            f"{source}: source not found; check the job's `source` path (a relative path is "
            "read from the job file's folder)"
        )


def _check_type(source: Path) -> None:
    if source.suffix.lower() not in FILE_FORMATS:
        raise ExtractError(
            f"{source}: unsupported file type {source.suffix!r}; use .csv, .parquet, "
            ".jsonl or .ndjson, or a folder of documents (text, PDF, images)"
        )


def _no_documents(folder: Path) -> ExtractError:
    return ExtractError(f"{folder}: the folder has no (non-hidden) files; nothing to extract")


def _has_documents(folder: Path) -> bool:
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(not name.startswith(".") for name in filenames):
            return True
    return False


def source_fingerprint(source: Path) -> dict[str, Any]:
    """Identify the source's content: a hash of a file, or of a folder's file list."""
    _check_exists(source)
    if source.is_dir():
        listing = [[name, p.stat().st_size, p.stat().st_mtime_ns] for name, p in _documents(source)]
        digest = hashlib.sha256(orjson.dumps(listing)).hexdigest()
        return {"kind": "folder", "files": len(listing), "listing_sha256": digest}
    _check_type(source)
    stat = source.stat()
    if stat.st_size <= FULL_HASH_MAX_BYTES:
        return {"kind": "file", "size": stat.st_size, "sha256": _sha256(source)}
    with open(source, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        fh.seek(-SAMPLE_BYTES, os.SEEK_END)
        tail = fh.read(SAMPLE_BYTES)
    sample = hashlib.sha256(head + tail).hexdigest()
    return {"kind": "file", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sample": sample}


def unreadable(source: Path, exc: Exception) -> ExtractError:
    """The error for a source Polars or Arrow could not read, with a hint how to fix it."""
    kind = FILE_FORMATS.get(source.suffix.lower(), "documents")
    if kind == "JSON Lines" and (bad := first_bad_json_line(source)) is not None:
        return ExtractError(f"{source}: {bad}; fix or remove that line and rerun")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = "check that it is valid, UTF-8 encoded " + kind
    if "utf-8" in first_line.lower():
        hint = "it is not UTF-8: convert it (e.g. iconv -f latin1 -t utf-8) and rerun"
    return ExtractError(f"{source}: could not read it as {kind} ({first_line}); {hint}")


def first_bad_json_line(source: Path) -> str | None:
    """Where a JSON Lines file first goes wrong (`line 3, column 12: ...`); Polars' errors
    give no line. None when every line is a JSON object (or blank)."""
    with open(source, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line.rstrip(b"\r\n"))
            except orjson.JSONDecodeError as exc:
                return f"line {number}, column {exc.colno}: not valid JSON ({exc.msg})"
            if not isinstance(value, dict):
                return f"line {number}: a JSON {type(value).__name__}, not an object of columns"
    return None


def _scan_file(source: Path, wanted: list[str]) -> tuple[pl.LazyFrame, list[str]]:
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
        raise unreadable(source, exc) from None
    return frame, available


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
