"""Split a request file the API refused as too large (413) into two halves; or take the
requests a deadline left unanswered out of a file (`subset_request_file`).

The body limit is the API's to enforce: halfrate cuts files at HALFRATE_MAX_BATCH_BYTES, but
when a create still gets 413 (nothing was created), `submit` sends the file as two halves
instead, recursively. `requests/a1/part-0002.jsonl` becomes `part-0002.1.jsonl` and
`part-0002.2.jsonl` (then `part-0002.1.1.jsonl`, ...), each with its own index, written
atomically; the same parent always splits into the same bytes, so a crash before the ledger
records the split only makes the same files again.
"""

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from halfrate.gateway import body_size
from halfrate.ledger import RequestFile
from halfrate.workspace import JobPaths


class SplitError(RuntimeError):
    """A request file cannot be split as its index describes it."""


def split_request_file(paths: JobPaths, parent: RequestFile) -> list[RequestFile]:
    """Write the two halves of `parent` (and their indexes); returns them, not yet registered."""
    if parent.n_requests < 2:
        raise SplitError(f"{parent.path}: a single request cannot be split")
    index = pq.read_table(paths.index_file(parent.path))
    if index.num_rows != parent.n_requests:
        raise SplitError(
            f"{paths.index_file(parent.path)}: lists {index.num_rows} requests, but "
            f"{parent.path} holds {parent.n_requests}; rebuild the requests"
        )
    first = (parent.n_requests + 1) // 2
    stem = parent.path.removesuffix(".jsonl")
    halves = []
    with (paths.root / parent.path).open("rb") as source:
        for number, (start, count) in enumerate(
            ((0, first), (first, parent.n_requests - first)), start=1
        ):
            path = f"{stem}.{number}.jsonl"
            ids = index.column("custom_id").slice(start, count).to_pylist()
            size, sha = _copy_lines(source, paths.root / path, ids, parent.path)
            _write_atomic_table(index.slice(start, count), paths.index_file(path))
            halves.append(
                RequestFile(
                    path=path,
                    attempt=parent.attempt,
                    part=parent.part,
                    purpose=parent.purpose,
                    n_requests=count,
                    body_bytes=body_size(size),
                    sha256=sha,
                    parent=parent.path,
                )
            )
    return halves


def subset_request_file(
    paths: JobPaths, parent: RequestFile, keep: set[str], path: str
) -> RequestFile | None:
    """Write `path` (and its index) with the requests of `parent` whose custom_id is in
    `keep`, in the parent's order; returns it, not yet registered (None: nothing to keep)."""
    index = pq.read_table(paths.index_file(parent.path))
    ids = index.column("custom_id").to_pylist()
    mask = [custom_id in keep for custom_id in ids]
    if not any(mask):
        return None
    sha = hashlib.sha256()
    size = 0
    dest = paths.root / path
    tmp = dest.with_name(f".{dest.name}.tmp")
    with (paths.root / parent.path).open("rb") as source, tmp.open("wb") as out:
        for expected, kept in zip(ids, mask, strict=True):
            line = source.readline()
            if not kept:
                continue
            if orjson.loads(line).get("custom_id") != expected:
                raise SplitError(f"{parent.path}: its lines do not match its index")
            out.write(line)
            sha.update(line)
            size += len(line)
        out.flush()
        os.fsync(out.fileno())
    _write_atomic_table(index.filter(pa.array(mask)), paths.index_file(path))
    os.replace(tmp, dest)
    return RequestFile(
        path=path,
        attempt=parent.attempt,
        part=parent.part,
        purpose=parent.purpose,
        n_requests=sum(mask),
        body_bytes=body_size(size),
        sha256=sha.hexdigest(),
        parent=parent.path,
    )


def _copy_lines(source: BinaryIO, dest: Path, custom_ids: list[str], name: str) -> tuple[int, str]:
    """Copy the next len(custom_ids) lines of `source` to `dest`, checking each line's id."""
    sha = hashlib.sha256()
    size = 0
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("wb") as out:
        for expected in custom_ids:
            line = source.readline()
            if not line.endswith(b"\n") or orjson.loads(line).get("custom_id") != expected:
                tmp.unlink()
                raise SplitError(
                    f"{name}: its lines do not match its index (expected custom_id "
                    f"{expected!r}); rebuild the requests"
                )
            out.write(line)
            sha.update(line)
            size += len(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)
    return size, sha.hexdigest()


def _write_atomic_table(table: pa.Table, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp")
    pq.write_table(table, tmp)
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
