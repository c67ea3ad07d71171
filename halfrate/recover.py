"""`halfrate recover NAME`: rebuild a job's lost ledger from the warehouse and the API.

A job's request files are deterministic (the same job settings and source give the same files,
byte for byte, and the same custom_ids), and the warehouse records every batch a job sends
(`batches`: id, attempt, request file, size) as soon as it is created. So a deleted job folder
can be rebuilt without sending anything:

1. the job's settings come from its job.json or, if that is gone too, the warehouse's `jobs`;
2. the rows are extracted and each attempt the warehouse knows is built again (a later attempt
   from the downloaded results of the one before, as the run did); a file a 413 split is split
   again the same way;
3. each batch the warehouse knows is attached to its request file after a retrieve (its size
   must match), and every other file of those attempts gets an intent dated at the job's first
   batch: the next run reconciles it with the API's batch list (same request count, an id no
   ledger knows) before it sends anything. Every batch attached either way is verified by its
   custom_ids once it ends (released and sent again on a mismatch, as any adoption).
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from halfrate import pipeline
from halfrate.config import JobConfig, parse_job
from halfrate.errors import ActionableError, APIError
from halfrate.gateway import BatchGateway, make_client, total_requests
from halfrate.kinds import kind_of
from halfrate.ledger import Ledger, now_iso
from halfrate.pilot import PILOT_KEY
from halfrate.realtime import REALTIME_ID_PREFIX
from halfrate.settings import Settings
from halfrate.split import split_request_file
from halfrate.sql import load_sql
from halfrate.status import read_job
from halfrate.submit import RECOVERED_NOTE
from halfrate.warehouse import connect
from halfrate.workspace import JobPaths, job_paths, open_job

log = logging.getLogger(__name__)


class RecoverError(RuntimeError, ActionableError):
    """The ledger cannot be rebuilt as asked; the message says why and what to do."""


@dataclass(frozen=True)
class WarehouseBatch:
    batch_id: str
    attempt: int
    purpose: str
    request_file: str
    n_requests: int
    body_bytes: int
    created_at: datetime | None


@dataclass(frozen=True)
class Recovered:
    """What `recover` rebuilt."""

    job_name: str
    attached: list[str]
    """Batch ids attached to their request files."""
    to_reconcile: list[str]
    """Request files left with an intent: the next run reconciles them with the batch list."""


def recover(job_name: str, settings: Settings) -> Recovered:
    """Rebuild the ledger of `job_name`; raises `RecoverError` when there is nothing to do."""
    paths = job_paths(settings.workdir, job_name)
    if paths.ledger.exists() and Ledger(paths.ledger).has_batches():
        raise RecoverError(
            f"job {job_name!r} has a ledger with batches ({paths.ledger}): nothing to recover; "
            "rerun the job to resume it"
        )
    batches, config = _from_warehouse(settings, job_name)
    if not batches:
        raise RecoverError(
            f"the warehouse {settings.warehouse} knows no batch of job {job_name!r}: there is "
            "nothing to recover; run the job"
        )
    realtime = [b.batch_id for b in batches if b.batch_id.startswith(REALTIME_ID_PREFIX)]
    if realtime:
        raise RecoverError(
            f"job {job_name!r} sent requests in real time ({', '.join(realtime[:3])}): the "
            "Messages API keeps no record of them, so a ledger that would not send them again "
            "cannot be rebuilt. Their answers stay in the warehouse; rerun the job with "
            "--restart to start it over"
        )
    job = _job_config(paths, settings, job_name, config)
    open_job(settings.workdir, job)
    pipeline.extract(job, settings)
    return _Rebuild(job, settings, paths, BatchGateway(make_client(settings))).run(batches)


class _Rebuild:
    def __init__(
        self, job: JobConfig, settings: Settings, paths: JobPaths, gateway: BatchGateway
    ) -> None:
        self.job, self.settings, self.paths, self.gateway = job, settings, paths, gateway
        self.ledger = Ledger(paths.ledger)

    def run(self, batches: list[WarehouseBatch]) -> Recovered:
        by_attempt: dict[int, list[WarehouseBatch]] = defaultdict(list)
        for b in batches:
            by_attempt[b.attempt].append(b)
        self._plan_pilot(batches)
        first = min((b.created_at for b in batches if b.created_at), default=None)
        since = _iso(first) if first else now_iso()
        attached, open_files = [], []
        for attempt in sorted(by_attempt):
            if attempt > 1:  # a retry attempt is planned from the results of the one before
                pipeline.download(self.job, self.settings, attempt - 1)
            pipeline.build(self.job, self.settings, attempt)
            for b in by_attempt[attempt]:
                attached.append(self._attach(b))
            for record in self.ledger.records(attempt=attempt):
                if record.status is None:
                    self.ledger.record_intent(record.file.path, at=since)
                    open_files.append(record.file.path)
        log.info(
            "recovered %s: %d batches, %d files to reconcile",
            self.job.name,
            len(attached),
            len(open_files),
        )
        return Recovered(self.job.name, attached, open_files)

    def _plan_pilot(self, batches: list[WarehouseBatch]) -> None:
        """Attempt 1 had a pilot: rebuild it with the same rows (halfrate/pilot.py)."""
        sent = sum(b.n_requests for b in batches if b.attempt == 1 and b.purpose == "pilot")
        if sent:
            per_row = len(kind_of(self.job).request_keys(self.job))
            self.ledger.set_meta(PILOT_KEY, str(sent // per_row))

    def _attach(self, b: WarehouseBatch) -> str:
        record = self._file(b.request_file, b)
        if (record.n_requests, record.body_bytes) != (b.n_requests, b.body_bytes):
            raise _changed(b, f"it holds {record.n_requests} requests ({record.body_bytes} bytes)")
        try:
            batch = self.gateway.retrieve(b.batch_id)
        except APIError as exc:
            raise RecoverError(f"batch {b.batch_id} ({b.request_file}): {exc}") from None
        if total_requests(batch) != b.n_requests:
            raise _changed(b, f"the API says the batch holds {total_requests(batch)} requests")
        data = batch.model_dump(mode="json")
        self.ledger.record_intent(b.request_file, at=data["created_at"])
        self.ledger.record_batch(b.request_file, data, note=RECOVERED_NOTE)
        self.ledger.update_progress(data)
        return b.batch_id

    def _file(self, path: str, b: WarehouseBatch) -> Any:
        """The request file `path`, splitting its parent again if a 413 had split it."""
        known = {r.file.path: r for r in self.ledger.records()}
        if path in known:
            return known[path].file
        stem = path.removesuffix(".jsonl")
        parent_stem, _, half = stem.rpartition(".")
        if not half.isdigit() or not parent_stem:
            raise _changed(b, "the rebuilt requests have no such file")
        parent = self._file(parent_stem + ".jsonl", b)
        self.ledger.record_intent(parent.path)
        halves = split_request_file(self.paths, parent)
        self.ledger.split(parent.path, halves, "too large for the API (413); split (recovered)")
        return self._file(path, b)


def _changed(b: WarehouseBatch, what: str) -> RecoverError:
    return RecoverError(
        f"batch {b.batch_id} was sent for {b.request_file} ({b.n_requests} requests, "
        f"{b.body_bytes} bytes), but the rebuilt file differs: {what}. The job's source or "
        "settings changed since it ran, so its ledger cannot be rebuilt; rerun the job with "
        "--restart to start it over (its batches stay in the warehouse until then)."
    )


def _from_warehouse(settings: Settings, job_name: str) -> tuple[list[WarehouseBatch], str | None]:
    path = settings.warehouse
    if not path.exists():
        return [], None
    params: dict[str, Any] = {"job_name": job_name, "since": None}
    try:
        with connect(path, read_only=True, retry_seconds=settings.load_retry_seconds) as con:
            rows = con.execute(load_sql("recover/job_batches"), params).fetchall()
            found = con.execute(load_sql("recover/job_config"), {"job_name": job_name}).fetchone()
    except duckdb.CatalogException:
        return [], None
    batches = [WarehouseBatch(*r) for r in rows]
    return batches, (found[0] if found else None)


def _job_config(paths: JobPaths, settings: Settings, name: str, config: str | None) -> JobConfig:
    if paths.job_file.exists():
        return read_job(settings.workdir, name)
    if config is None:
        raise RecoverError(
            f"job {name!r}: neither {paths.job_file} nor the warehouse's jobs table holds its "
            "settings; run the job again with --restart"
        )
    return parse_job(orjson.loads(config), "the warehouse's jobs table")


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
