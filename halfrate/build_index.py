"""Request index files (custom_id -> row_id), and the check that an attempt's custom_ids are unique."""

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from halfrate.build_ids import BuildError
from halfrate.workspace import JobPaths


def write_index(
    path: Path, custom_ids: pa.Array, row_ids: pa.Array, attempt: int, requests: pa.Array | None
) -> None:
    """custom_id, row_id, attempt (and request: the key, for kinds with several per row)."""
    attempts = pa.array([attempt] * len(custom_ids), pa.uint8())
    columns = {"custom_id": custom_ids, "row_id": row_ids, "attempt": attempts}
    if requests is not None:
        columns["request"] = requests
    table = pa.table(columns)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_unique(
    hashes: Sequence[pa.Array], paths: JobPaths, files: Sequence[Path], attempt: int
) -> None:
    """Two rows must never share a custom_id within an attempt (their results would mix).

    Compares 8-byte hashes kept per file; the strings are read back from the index files
    (of the request `files`) only when two hashes are equal.
    """
    combined = pa.chunked_array(hashes, pa.uint64()).combine_chunks()
    ordered = combined.take(pc.array_sort_indices(combined))
    if len(ordered) < 2 or not pc.any(pc.equal(ordered[1:], ordered[:-1])).as_py():
        return
    indexes = [paths.index_file(paths.relative(jsonl)) for jsonl in files]
    clashing = (
        pl.scan_parquet(indexes)
        .select("custom_id", "row_id")
        .filter(pl.col("custom_id").is_duplicated())
        .collect()
    )
    if clashing.height:
        shown = ", ".join(repr(r) for r in clashing["row_id"].head(10))
        raise BuildError(
            f"attempt {attempt}: {clashing.height} rows share a custom_id (row ids "
            f"{shown}); row ids must be unique: rerun extract, or fix the retry rows file"
        )
