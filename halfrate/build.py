"""Build requests: stream rows from Parquet into JSONL request files, one file per future batch.

Each line is an `anthropic.types.messages.batch_create_params.Request`. The part of a line that is
the same for every row (model, cached instructions, output schema) is serialized once; each row
only splices in its custom_id and its JSON-encoded message (perf-baseline.md, section A), a whole
Arrow batch at a time. Files are cut so that neither the request count nor the create body size
exceeds the settings' limits; a background thread hashes and writes while the next batch builds.
"""

import hashlib
import logging
import os
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from halfrate.config import CacheTTL, JobConfig
from halfrate.errors import ActionableError
from halfrate.kinds import kind_of
from halfrate.ledger import Ledger, RequestFile
from halfrate.progress_hooks import SILENT, StepProgress, step
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

if TYPE_CHECKING:  # importing anthropic costs seconds; the types are only for checking
    from anthropic.types import MessageParam
    from anthropic.types.messages.batch_create_params import Request

log = logging.getLogger(__name__)

BODY_OVERHEAD = len(b'{"requests":[') + len(b"]}") - 1  # body = file size + this
RAW_KEY = re.compile(r"[A-Za-z0-9_-]{1,56}")
REQUEST_KEY = re.compile(r"[a-z]{0,4}")
HASH_BYTES = 12  # a long or unusual row id's custom_id key: "h" + 24 hex digits
CUSTOM_ID_PREFIX_BYTES = len("a10xxxx_")  # the longest: attempt 10, a 4-letter request key
BATCH_LINE_BYTES = 3 << 20  # rows are read and encoded in batches of about this many bytes
READ_BATCH_ROWS = 4096  # the most rows in one batch
MAX_BLOCKS_IN_FLIGHT = 3  # batches handed to the I/O thread but not yet written
_CUSTOM_ID_SLOT = "\x00halfrate:custom_id\x00"
_TEXT_SLOT = "\x00halfrate:text\x00"


class BuildError(ValueError, ActionableError):
    """Requests cannot be built; the message names the file or row and what to do."""


def custom_id_for(row_id: str, attempt: int, request: str = "") -> str:
    """The request's custom_id: the row id when it is short and plain, else a hash of it.

    `request` tells apart the requests of one row when a kind sends more than one per row
    (a few lowercase letters, e.g. "ab" and "ba"); it sits before the `_`, so no row id can
    make two requests share an id. The API allows 64 characters: "a10xxxx_" + 56.
    """
    if not REQUEST_KEY.fullmatch(request):
        raise BuildError(f"request key {request!r}: use up to 4 lowercase letters")
    key = row_id if RAW_KEY.fullmatch(row_id) else "h" + _hash_key(row_id)
    return f"a{attempt}{request}_{key}"


def _hash_key(row_id: str) -> str:
    return hashlib.blake2b(row_id.encode(), digest_size=HASH_BYTES).hexdigest()


def request_for(job: JobConfig, custom_id: str, content: Any) -> "Request":
    """One batch request, as a plain dict (the reference the fast path must match)."""
    return {"custom_id": custom_id, "params": kind_of(job).params(job, content)}


class RequestTemplate:
    """The serialized request with two holes: the custom_id and the user message.

    `lines` fills them for a whole Arrow batch at once: Polars JSON-encodes the message
    `{"role":"user","content":<text>}` (byte-identical to orjson) and concatenates the constant
    parts around it, so no Python code runs per row. Rows whose content is already JSON
    (content blocks: rows.parquet's `content` column) are spliced in as they are.
    """

    def __init__(self, job: JobConfig) -> None:
        whole = orjson.dumps(request_for(job, _CUSTOM_ID_SLOT, _TEXT_SLOT))
        cid_slot, message_slot = orjson.dumps(_CUSTOM_ID_SLOT), orjson.dumps(_message(_TEXT_SLOT))
        if whole.count(cid_slot) != 1 or whole.count(message_slot) != 1:
            raise BuildError(
                f"kind {job.kind!r}: the request must hold the row's text once, as the "
                "user message, and the instructions must not contain NUL characters"
            )
        head, rest = whole.split(cid_slot)
        middle, tail = rest.split(message_slot)
        self.head, self.middle, self.tail = head + b'"', b'"' + middle, tail + b"\n"

    def lines(self, custom_ids: pa.Array, texts: pa.Array, blocks: bool = False) -> pa.Array:
        """The JSONL lines of a batch of rows, as one Arrow large_binary array.

        `texts` are the message texts, or with `blocks` the JSON of each message's content.
        """
        line = pl.concat_str(
            pl.lit(self.head.decode()),
            pl.col("custom_id"),
            pl.lit(self.middle.decode()),
            message_json(pl.col("text"), blocks),
            pl.lit(self.tail.decode()),
        )
        frame = pl.DataFrame({"custom_id": custom_ids, "text": texts})
        return frame.select(line).to_series().to_arrow().cast(pa.large_binary())

    def body_bytes(self, row_id: pl.Expr, message_bytes: pl.Expr) -> pl.Expr:
        """The body of a batch holding only this row's request, in bytes, at its largest (the
        custom_id of the last attempt, with a request key): what `max_batch_bytes` limits.

        `message_bytes` is the length of the user message's JSON (`message_json`).
        """
        plain = row_id.str.contains(f"^{RAW_KEY.pattern}$").fill_null(False)
        key = pl.when(plain).then(row_id.str.len_bytes()).otherwise(1 + 2 * HASH_BYTES)
        fixed = len(self.head) + len(self.middle) + len(self.tail) + BODY_OVERHEAD
        return key + (fixed + CUSTOM_ID_PREFIX_BYTES) + message_bytes

    def min_body_bytes(self) -> int:
        """The smallest body a request of this job can have (an empty one-character id)."""
        fixed = len(self.head) + len(self.middle) + len(self.tail) + BODY_OVERHEAD
        return fixed + CUSTOM_ID_PREFIX_BYTES + 1 + len(orjson.dumps(_message("")))


BLOCKS_MESSAGE_BYTES = len(b'{"role":"user","content":}')
"""What `message_json` adds around the JSON of content blocks, in bytes."""


def message_json(text: pl.Expr, blocks: bool = False) -> pl.Expr:
    """The user message's JSON, byte-identical to orjson: from the text, or with `blocks` from
    the JSON of its content blocks (spliced in as it is)."""
    if blocks:
        return pl.concat_str(pl.lit('{"role":"user","content":'), text, pl.lit("}"))
    return pl.struct(role=pl.lit("user"), content=text).struct.json_encode()


def _message(text: str) -> "MessageParam":
    return {"role": "user", "content": text}


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
    builder = _Builder(paths, folder, attempt, settings, template, blocks=column == "content")
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


def custom_ids_for(row_ids: pa.Array, attempt: int, request: str | pa.Array = "") -> pa.Array:
    """`custom_id_for` over an Arrow string array (the plain ids never leave Arrow).

    `request` is one key for every row, or an array of each row's key.
    """
    keys_used = [request] if isinstance(request, str) else pc.unique(request).to_pylist()
    for used in keys_used:
        if not isinstance(used, str) or not REQUEST_KEY.fullmatch(used):
            raise BuildError(f"request key {used!r}: use up to 4 lowercase letters")
    row_ids = row_ids.cast(pa.string())
    plain = pc.match_substring_regex(row_ids, f"^{RAW_KEY.pattern}$")
    keys = row_ids
    if not pc.all(plain).as_py():
        hashed = [
            None if p else "h" + _hash_key(r)
            for r, p in zip(row_ids.to_pylist(), plain.to_pylist(), strict=True)
        ]
        keys = pc.if_else(plain, row_ids, pa.array(hashed, pa.string()))
    if isinstance(request, str):
        return pc.binary_join_element_wise(f"a{attempt}{request}_", keys, "")
    return pc.binary_join_element_wise(f"a{attempt}", request.cast(pa.string()), "_", keys, "")


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


class _Builder:
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
        offsets = _offsets(lines)
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
        _write_index(index, custom_ids, row_ids, self.attempt, requests)

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
        """Two rows must never share a custom_id within an attempt (their results would mix).

        Compares 8-byte hashes kept per file; the strings are read back from the index files
        only when two hashes are equal.
        """
        hashes = pa.chunked_array(self.custom_id_hashes, pa.uint64()).combine_chunks()
        ordered = hashes.take(pc.array_sort_indices(hashes))
        if len(ordered) < 2 or not pc.any(pc.equal(ordered[1:], ordered[:-1])).as_py():
            return
        indexes = [self.paths.index_file(self.paths.relative(f.jsonl)) for f in self.files]
        clashing = (
            pl.scan_parquet(indexes)
            .select("custom_id", "row_id")
            .filter(pl.col("custom_id").is_duplicated())
            .collect()
        )
        if clashing.height:
            shown = ", ".join(repr(r) for r in clashing["row_id"].head(10))
            raise BuildError(
                f"attempt {self.attempt}: {clashing.height} rows share a custom_id (row ids "
                f"{shown}); row ids must be unique: rerun extract, or fix the retry rows file"
            )


def _offsets(lines: pa.Array) -> list[int]:
    """Where each line starts in the array's data buffer (and where the last one ends)."""
    raw = memoryview(lines.buffers()[1]).cast("q")
    return raw[lines.offset : lines.offset + len(lines) + 1].tolist()


def _write_index(
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
