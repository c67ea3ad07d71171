"""The request file writer: one attempt's lines into files cut at the batch limits, and indexes.

Files are cut so that neither the request count nor the create body size exceeds the settings'
limits; a background thread hashes and writes while the next batch builds.
"""

import hashlib
import os
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from halfrate.build_ids import BuildError, custom_ids_for
from halfrate.build_index import check_unique, write_index
from halfrate.build_template import BODY_OVERHEAD, RequestTemplate, line_offsets
from halfrate.ledger import RequestFile
from halfrate.progress_hooks import SILENT, StepProgress
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

MAX_BLOCKS_IN_FLIGHT = 3  # batches handed to the I/O thread but not yet written


PURPOSES = ("prime", "pilot", "main")
"""Attempt 1's files by purpose, in the order they are sent (halfrate/pilot.py)."""


def _route(
    batch: pa.RecordBatch, sample: pa.Array | None, first: bool
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """A batch of lines by the file purpose they go to: the very first line to the prime
    file (`first`), the `sample` rows' lines to pilot files, the others to main files."""
    if first and batch.num_rows:
        yield "prime", batch.slice(0, 1)
        batch = batch.slice(1)
    if not batch.num_rows:
        return
    chosen = None if sample is None else pc.is_in(batch.column(0).cast(pa.string()), sample)
    if chosen is None or not pc.any(chosen).as_py():  # most batches: no copy
        yield "main", batch
        return
    for purpose, mask in (("pilot", chosen), ("main", pc.invert(chosen))):
        part = batch.filter(mask)
        if part.num_rows:
            yield purpose, part


class _OpenFile:
    """A request file being written; its blocks are hashed and written on the I/O thread."""

    def __init__(self, folder: Path, stem: str, part: int, purpose: str, max_count: int) -> None:
        self.jsonl = folder / f"{stem}.jsonl"
        self.tmp = folder / f".{stem}.jsonl.tmp"
        self.part, self.purpose, self.max_count = part, purpose, max_count
        self.fh = open(self.tmp, "wb", buffering=0)  # noqa: SIM115 - closed by finish()
        self.sha = hashlib.sha256()
        self.size = self.count = 0
        self.custom_ids: list[pa.Array] = []
        self.row_ids: list[pa.Array] = []
        self.requests: list[pa.Array] = []

    def write(self, block: memoryview) -> None:
        self.sha.update(block)  # both calls release the GIL: they overlap the main thread
        self.fh.write(block)

    def finish(self) -> None:
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.jsonl)


class RequestWriter:
    """Writes one attempt's request files and their indexes, cutting them at the limits."""

    def __init__(
        self,
        paths: JobPaths,
        folder: Path,
        attempt: int,
        settings: Settings,
        template: RequestTemplate,
        blocks: bool,
    ) -> None:
        self.paths, self.folder, self.attempt, self.template = paths, folder, attempt, template
        self.blocks = blocks
        self.max_requests = settings.max_requests_per_batch
        self.max_body = settings.max_batch_bytes
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="halfrate-build-io")
        # A finished file is synced (and renamed) on a thread of its own, so the next file is
        # written meanwhile: an fsync of a 256 MB part no longer stalls the build.
        self.syncs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="halfrate-build-sync")
        self.synced: list[Future[None]] = []
        self.pending: deque[Future[Any]] = deque()
        self.files: list[_OpenFile] = []
        self.custom_id_hashes: list[pa.Array] = []

    def write_all(
        self,
        batches: Iterator[pa.RecordBatch],
        prime: bool,
        sample: pa.Array | None = None,
        progress: StepProgress = SILENT,
    ) -> list[RequestFile]:
        """Write every line, in one pass: the first to the prime file when `prime`, the lines
        of the `sample` rows to pilot files, the others to main files (part-<NNNN>)."""
        current: dict[str, _OpenFile | None] = {}
        if prime:
            current["prime"] = self._open("prime", 0, "prime", 1)
        first = prime
        for batch in batches:
            for purpose, lines in _route(batch, sample, first):
                current[purpose] = self._write_lines(current.get(purpose), purpose, lines)
            first = first and batch.num_rows == 0
            progress.advance(batch.num_rows)
        for opened in current.values():
            if opened is not None:
                self._finish(opened)
        self.io.shutdown()
        self._drain()
        self.syncs.shutdown()
        for synced in self.synced:
            synced.result()  # every file durable (and renamed) before the ledger names it
        self.files.sort(key=lambda f: (PURPOSES.index(f.purpose), f.part))
        return [self._request_file(opened) for opened in self.files]

    def _write_lines(
        self, current: _OpenFile | None, purpose: str, batch: pa.RecordBatch
    ) -> _OpenFile:
        """Write a batch's lines to the current file of `purpose`, starting new ones as the
        limits are reached; returns the file that is current after them."""
        current = current or self._open_next(None, purpose)
        row_ids, custom_ids, texts, requests = self._columns(batch)
        lines = self.template.lines(custom_ids, texts, self.blocks)
        offsets = line_offsets(lines)
        data = memoryview(lines.buffers()[2])
        start, end = 0, len(lines)
        while start < end:
            room = self.max_body - BODY_OVERHEAD - current.size
            stop = bisect_right(offsets, offsets[start] + room, start, end + 1) - 1
            stop = min(stop, start + current.max_count - current.count)
            if stop == start:  # the next line does not fit: start a new file
                if current.count == 0:
                    size = offsets[start + 1] - offsets[start] + BODY_OVERHEAD
                    raise self._too_large(row_ids[start].as_py(), size)
                self._close(current)
                current = self._open_next(current, purpose)
                continue
            self._submit(current.write, data[offsets[start] : offsets[stop]])
            current.size += offsets[stop] - offsets[start]
            current.count += stop - start
            current.custom_ids.append(custom_ids[start:stop])
            current.row_ids.append(row_ids[start:stop])
            if requests is not None:
                current.requests.append(requests[start:stop])
            start = stop
        return current

    def _finish(self, opened: _OpenFile) -> None:
        if opened.count:
            self._close(opened)
        else:
            self._discard(opened)

    def _columns(
        self, batch: pa.RecordBatch
    ) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array | None]:
        row_ids, texts = batch.column(0).cast(pa.string()), batch.column(1).cast(pa.string())
        requests = batch.column(2).cast(pa.string()) if batch.num_columns > 2 else None
        named = (("row_id", row_ids), ("text", texts), ("request", requests))
        for name, column in named:
            if column is not None and column.null_count:
                first = pc.index(pc.is_null(column), True).as_py()
                row_id = row_ids[first].as_py()
                raise BuildError(f"row id {row_id!r}: {name} is null; rerun extract")
        custom_ids = custom_ids_for(row_ids, self.attempt, "" if requests is None else requests)
        return row_ids, custom_ids, texts, requests

    def _too_large(self, row_id: str, body_bytes: int) -> BuildError:
        return BuildError(
            f"row {row_id!r}: its request is {body_bytes:,} bytes as a batch body, over "
            f"max_batch_bytes={self.max_body:,}; shorten the text or the instructions "
            "(or lower HALFRATE_MAX_TEXT_CHARS and rerun extract)"
        )

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue work on the I/O thread, keeping few blocks in flight (bounded memory)."""
        self.pending.append(self.io.submit(fn, *args))
        while len(self.pending) > MAX_BLOCKS_IN_FLIGHT or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()

    def _drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def _open(self, stem: str, part: int, purpose: str, max_count: int) -> _OpenFile:
        opened = _OpenFile(self.folder, stem, part, purpose, max_count)
        self.files.append(opened)
        return opened

    def _open_next(self, previous: _OpenFile | None, purpose: str) -> _OpenFile:
        """The next file of `purpose`: part-<NNNN> (main) or pilot-<NNNN>, numbered from 1."""
        part = previous.part + 1 if previous and previous.purpose == purpose else 1
        stem = "part" if purpose == "main" else purpose
        return self._open(f"{stem}-{part:04d}", part, purpose, self.max_requests)

    def _discard(self, opened: _OpenFile) -> None:
        self.files.remove(opened)
        opened.fh.close()
        opened.tmp.unlink()

    def _close(self, opened: _OpenFile) -> None:
        """Finish a file (sync, rename) once its writes are done, and write its index meanwhile."""
        self._submit(lambda: self.synced.append(self.syncs.submit(opened.finish)))
        custom_ids = pa.concat_arrays(opened.custom_ids)
        row_ids = pa.concat_arrays(opened.row_ids)
        requests = pa.concat_arrays(opened.requests) if opened.requests else None
        self.custom_id_hashes.append(pl.Series(custom_ids).hash(seed=1).to_arrow())
        index = self.paths.index_file(self.paths.relative(opened.jsonl))
        write_index(index, custom_ids, row_ids, self.attempt, requests)

    def _request_file(self, opened: _OpenFile) -> RequestFile:
        return RequestFile(
            path=self.paths.relative(opened.jsonl),
            attempt=self.attempt,
            part=opened.part,
            purpose=opened.purpose,
            n_requests=opened.count,
            body_bytes=opened.size + BODY_OVERHEAD,
            sha256=opened.sha.hexdigest(),
        )

    def abort(self) -> None:
        """Stop the I/O thread and close every file (the caller removes them)."""
        self.io.shutdown(cancel_futures=True)
        self.syncs.shutdown(cancel_futures=True)
        for opened in self.files:
            opened.fh.close()

    def check_unique(self) -> None:
        """Two rows must never share a custom_id within an attempt (their results would mix)."""
        check_unique(self.custom_id_hashes, self.paths, [f.jsonl for f in self.files], self.attempt)
