"""Download ended batches' results: raw bytes to disk first, verified before they count.

For each batch the ledger marks `ended`, the results stream goes unchanged to
`results/<batch_id>.jsonl.part`. It becomes `results/<batch_id>.jsonl` (and the batch
`downloaded`) only after `verify_results` has checked it against the request file's index:
every custom_id back exactly once, none unknown, no blank or malformed line, as many lines as
the batch holds requests, and per-type counts equal to the batch's `request_counts`.

A cut stream (the SDK neither retries nor even wraps `httpx2.RemoteProtocolError`) or a
failed check deletes the `.part` and downloads again, a bounded number of times. Results with
custom_ids the file never sent (or a batch of another size) are not a transfer problem: the
batch is not this file's. For a batch that was *adopted* (reconciled after a lost create, or
adopted by hand), that is the adoption proven wrong: the ledger releases it as foreign (never
adopted again, never canceled) and puts the file back to an intent, so the next submit
reconciles again and sends it if no batch of its own turns up. For a batch we created it is an
error that names the batch. A verified results file on disk is never downloaded again.
"""

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict

from halfrate.errors import ActionableError, APIError, ErrorKind
from halfrate.gateway import BatchGateway, total_requests
from halfrate.ledger import BatchRecord, BatchStatus, Ledger
from halfrate.progress_hooks import SILENT, StepProgress, step
from halfrate.submit import ADOPTED_NOTES
from halfrate.workspace import JobPaths

if TYPE_CHECKING:
    from anthropic.types.messages import MessageBatch

log = logging.getLogger(__name__)

RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
EXAMPLES = 5
"""How many custom_ids an error message quotes."""
VERIFY_BLOCK = 4 << 20
"""Bytes of results lines verification reads at a time."""


class DownloadError(RuntimeError):
    """Base class of the errors `download_ended` raises."""


class DownloadVerificationError(DownloadError):
    """A batch's results do not match its request file, even after downloading again."""


class ResultsUnavailableError(DownloadError, ActionableError):
    """The API no longer has the batch's results (archived, deleted, or past retention)."""


class DownloadSummary(BaseModel):
    """One batch's verified results file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str
    request_file: str
    results_file: str
    """Relative to the job folder."""
    lines: int
    bytes: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    downloads: int
    """Downloads this call made (0: the verified file was already on disk)."""


@dataclass
class Verification:
    """What `verify_results` found; `ok` when nothing is wrong."""

    lines: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)
    """1-based line numbers of blank or unparsable lines."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_results(
    results: Path,
    index: Path,
    request_counts: dict[str, int],
    progress: StepProgress = SILENT,
) -> Verification:
    """Check a raw results file against the request file's index and the batch's counts.

    Memory is bounded by one batch: the set of its custom_ids (and a block of lines, read
    `VERIFY_BLOCK` bytes at a time; `progress` advances once per block). Lines are parsed
    with orjson.
    """
    expected = _index_custom_ids(index)
    expected_set = set(expected)
    v = Verification()
    if len(expected_set) != len(expected):
        v.problems.append(f"the index {index.name} lists a custom_id twice")
    seen: set[str] = set()
    counts = dict.fromkeys(RESULT_TYPES, 0)
    loads = orjson.loads
    lines = 0
    with results.open("rb") as fh:
        while block := fh.readlines(VERIFY_BLOCK):
            for number, line in enumerate(block, start=lines + 1):
                try:
                    obj = loads(line)
                    custom_id = obj["custom_id"]
                    if type(custom_id) is not str:
                        raise TypeError
                    counts[obj["result"]["type"]] += 1  # KeyError: not one of the four types
                    if custom_id in seen:
                        v.duplicated.append(custom_id)
                    else:
                        seen.add(custom_id)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    v.malformed.append(number)
            lines += len(block)
            progress.advance(len(block))
    v.lines = lines
    v.counts = Counter(counts)
    v.unexpected = sorted(seen - expected_set)
    v.missing = [c for c in expected if c not in seen]

    total = sum(request_counts.get(k, 0) for k in ("processing", *RESULT_TYPES))
    if v.malformed:
        v.problems.append(
            f"{len(v.malformed)} blank or malformed lines (line {_examples(v.malformed)})"
        )
    if v.missing:
        v.problems.append(f"{len(v.missing)} custom_ids missing (e.g. {_examples(v.missing)})")
    if v.unexpected:
        v.problems.append(
            f"{len(v.unexpected)} custom_ids the request file never sent "
            f"(e.g. {_examples(v.unexpected)})"
        )
    if v.duplicated:
        v.problems.append(
            f"{len(v.duplicated)} custom_ids returned twice (e.g. {_examples(v.duplicated)})"
        )
    if v.lines != total:
        v.problems.append(f"{v.lines} lines, but the batch holds {total} requests")
    for kind in RESULT_TYPES:
        if v.counts[kind] != request_counts.get(kind, 0):
            v.problems.append(
                f"{v.counts[kind]} {kind} results, but the batch reports "
                f"{request_counts.get(kind, 0)}"
            )
    return v


def download_ended(
    ledger: Ledger,
    paths: JobPaths,
    gateway: BatchGateway,
    *,
    attempt: int | None = None,
    max_downloads: int = 3,
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0),
    sleep: Callable[[float], None] = time.sleep,
) -> list[DownloadSummary]:
    """Download and verify the results of every ended batch (of `attempt`, or all).

    Batches already `downloaded` whose file is on disk are reported, not fetched again.
    """
    downloader = _Downloader(ledger, paths, gateway, max_downloads, backoff, sleep)
    summaries: list[DownloadSummary] = []
    for record in ledger.records(attempt=attempt):
        if record.batch_id is None:
            continue
        final = paths.results_file(record.batch_id)
        if record.status is BatchStatus.downloaded and final.exists():
            summaries.append(_summary(record, paths, final, record.request_counts or {}, 0))
        elif record.status in (BatchStatus.ended, BatchStatus.downloaded):
            try:
                summaries.append(downloader.download(record))
            except _NotThisFilesBatch as wrong:
                if record.note not in ADOPTED_NOTES:
                    raise DownloadVerificationError(
                        f"{wrong}. halfrate created this batch for this file, so the file "
                        "changed after it was sent: check `halfrate status`; `halfrate adopt` "
                        "can attach the right batch"
                    ) from None
                ledger.release_foreign(record.file.path, record.batch_id, str(wrong))
                log.warning(
                    "%s: released batch %s as foreign (%s); the file will be reconciled and "
                    "sent again",
                    record.file.path,
                    record.batch_id,
                    wrong,
                )
    return summaries


class _NotThisFilesBatch(Exception):
    """The batch's results (or size) prove it holds another file's requests."""


class _Downloader:
    def __init__(
        self,
        ledger: Ledger,
        paths: JobPaths,
        gateway: BatchGateway,
        max_downloads: int,
        backoff: tuple[float, ...],
        sleep: Callable[[float], None],
    ) -> None:
        self.ledger = ledger
        self.paths = paths
        self.gateway = gateway
        self.max_downloads = max(1, max_downloads)
        self.backoff = backoff or (0.0,)
        self.sleep = sleep

    def download(self, record: BatchRecord) -> DownloadSummary:
        assert record.batch_id is not None
        batch_id = record.batch_id
        final = self.paths.results_file(batch_id)
        part = final.with_name(final.name + ".part")
        index = self.paths.index_file(record.file.path)
        if not index.is_file():
            raise DownloadError(
                f"{self.paths.relative(index)} is missing: the results of batch {batch_id} "
                f"cannot be checked without the index of {record.file.path}; rebuild it"
            )

        if final.exists() and record.request_counts:
            # A crash between the rename and the ledger update: check it again, keep it if good.
            if verify_results(final, index, record.request_counts).ok:
                self.ledger.set_status(batch_id, BatchStatus.downloaded)
                return _summary(record, self.paths, final, record.request_counts, 0)
            final.unlink()

        last: str = ""
        for number in range(1, self.max_downloads + 1):
            if number > 1:
                self.sleep(self.backoff[min(number - 2, len(self.backoff) - 1)])
            part.unlink(missing_ok=True)
            batch = self._retrieve(record, reuse=number == 1)
            counts = batch.request_counts.model_dump()
            try:
                with step(f"download {Path(record.file.path).stem}", unit="bytes") as progress:
                    self.gateway.download_results(batch_id, part, batch=batch, progress=progress)
            except APIError as exc:
                part.unlink(missing_ok=True)
                if exc.kind is ErrorKind.not_found:
                    raise self._unavailable(record, batch, exc) from None
                if not exc.transient:
                    raise
                last = f"download cut or failed ({exc})"
                log.warning("batch %s: %s; downloading again", batch_id, last)
                continue
            what = f"verify {Path(record.file.path).stem}"
            with step(what, sum(counts.values()), "results") as progress:
                check = verify_results(part, index, counts, progress)
            if check.ok:
                durable_replace(part, final)
                self.ledger.set_status(batch_id, BatchStatus.downloaded)
                log.info("batch %s: %d results verified", batch_id, check.lines)
                return _summary(record, self.paths, final, counts, number)
            part.unlink(missing_ok=True)
            last = "; ".join(check.problems)
            if check.unexpected:
                raise _NotThisFilesBatch(_wrong_batch(record, batch, check))
            log.warning(
                "batch %s: results failed verification (%s); downloading again", batch_id, last
            )
        raise DownloadVerificationError(
            f"batch {batch_id} ({record.file.path}): its results could not be downloaded and "
            f"verified in {self.max_downloads} tries; last problem: {last}. Nothing was kept; "
            "rerun the download later."
        )

    def _retrieve(self, record: BatchRecord, reuse: bool) -> "MessageBatch":
        """The batch now (the first try reuses the poll's retrieve that saw it end, if any)."""
        assert record.batch_id is not None
        batch = self.gateway.take_ended(record.batch_id) if reuse else None
        try:
            batch = batch or self.gateway.retrieve(record.batch_id, created_at=record.created_at)
        except APIError as exc:
            if exc.kind is not ErrorKind.not_found:
                raise
            raise self._unavailable(record, None, exc) from None
        self.ledger.update_progress(batch.model_dump(mode="json"))
        if batch.archived_at is not None:
            raise self._unavailable(record, batch, None)
        if total_requests(batch) != record.file.n_requests:
            raise _NotThisFilesBatch(
                f"batch {record.batch_id} is not the batch of {record.file.path}: it holds "
                f"{total_requests(batch)} requests and the file {record.file.n_requests}"
            )
        if batch.processing_status != "ended":
            raise DownloadError(
                f"batch {record.batch_id} ({record.file.path}) is "
                f"{batch.processing_status!r}, but the ledger says it ended; check the batches "
                "again before downloading"
            )
        return batch

    def _unavailable(
        self, record: BatchRecord, batch: "MessageBatch | None", exc: BaseException | None
    ) -> ResultsUnavailableError:
        why = (
            f"archived at {batch.archived_at.isoformat()}"
            if batch is not None and batch.archived_at is not None
            else f"the API answered {exc}"
            if exc is not None
            else "not available"
        )
        return ResultsUnavailableError(
            f"results of batch {record.batch_id} ({record.file.path}) are no longer available "
            f"({why}). The API keeps results for 29 days after a batch is created, and not after "
            "it is deleted; these rows must be submitted again (restart the job)."
        )


def durable_replace(part: Path, final: Path) -> None:
    """Rename a verified file into place so that a power cut cannot leave it half-written."""
    with part.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _wrong_batch(record: BatchRecord, batch: "MessageBatch", check: Verification) -> str:
    return (
        f"batch {batch.id} is not the batch of {record.file.path}: its results carry "
        f"{len(check.unexpected)} custom_ids the file never sent (e.g. "
        f"{_examples(check.unexpected)}) and miss {len(check.missing)} of the file's (e.g. "
        f"{_examples(check.missing)}); {check.lines} lines, counts "
        f"{dict(check.counts)} vs {batch.request_counts.model_dump()}"
    )


def _summary(
    record: BatchRecord, paths: JobPaths, final: Path, counts: dict[str, int], downloads: int
) -> DownloadSummary:
    assert record.batch_id is not None
    return DownloadSummary(
        batch_id=record.batch_id,
        request_file=record.file.path,
        results_file=paths.relative(final),
        lines=sum(counts.get(k, 0) for k in RESULT_TYPES),
        bytes=final.stat().st_size,
        succeeded=counts.get("succeeded", 0),
        errored=counts.get("errored", 0),
        canceled=counts.get("canceled", 0),
        expired=counts.get("expired", 0),
        downloads=downloads,
    )


def _index_custom_ids(index: Path) -> list[str]:
    try:
        frame = pl.read_parquet(index, columns=["custom_id"])
    except Exception as exc:
        raise DownloadError(f"{index}: cannot read the custom_id column ({exc})") from exc
    return [str(c) for c in frame["custom_id"].to_list()]


def _examples(items: list[str] | list[int]) -> str:
    shown = ", ".join(str(x) for x in items[:EXAMPLES])
    return shown + (", ..." if len(items) > EXAMPLES else "")
