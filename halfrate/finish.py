"""The deadline and `mode: realtime`: when a job's files stop becoming batches, and what is
sent in real time instead.

A job's files go out in real time (halfrate/realtime.py) when its `mode` is `realtime`, or
once its deadline has passed (halfrate/deadline.py; a duration counts from the first
submission, which `mark_first_submit` records once). At the deadline the await sensor calls
`cancel_at_deadline`: every batch of the job that has not ended is canceled by halfrate (a
*system* cancel, recorded in the ledger's `system_cancels`, never as the user's: its rows are
finished, not left `canceled`). The sensor waits for them to end (canceling -> ended), their
results are downloaded and loaded as usual, and then `realtime_files` lists what to send in
real time: per canceled batch a *remainder* file with its requests that came back `canceled`
or `expired` (same attempt, same custom_ids; its answers then supersede those results),
every file of the attempt not sent yet, and any real-time pseudo-batch a stopped run left.
Retry attempts after the deadline go out in real time as a whole.
"""

import logging
from datetime import UTC, datetime

import polars as pl

from halfrate.config import JobConfig
from halfrate.deadline import FIRST_SUBMIT_KEY, parse_deadline, parse_time
from halfrate.errors import APIError
from halfrate.gateway import BatchGateway
from halfrate.kinds.base import SendMode
from halfrate.ledger import BatchRecord, BatchStatus, Ledger, now_iso
from halfrate.results import staged_outcomes
from halfrate.split import subset_request_file
from halfrate.workspace import JobPaths

log = logging.getLogger(__name__)

UNANSWERED = ("canceled", "expired")
"""Result types of a deadline-canceled batch whose requests are finished in real time."""
DEADLINE_REASON = "the job's deadline passed"
REMAINDER_SUFFIX = ".rt.jsonl"


def mark_first_submit(ledger: Ledger) -> None:
    """Record when the job first sends anything (once): a duration deadline counts from it.

    A job that sent batches before it had a deadline counts from its first create's intent."""
    if ledger.get_meta(FIRST_SUBMIT_KEY) is None:
        earlier = [r.intent_at for r in ledger.records() if r.intent_at]
        ledger.set_meta(FIRST_SUBMIT_KEY, min(earlier, key=_instant, default=None) or now_iso())


def _instant(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed


def deadline_of(job: JobConfig, ledger: Ledger) -> datetime | None:
    """The job's absolute deadline (UTC); None without one (or before a duration starts)."""
    if job.deadline is None:
        return None
    return parse_deadline(job.deadline).resolve(parse_time(ledger.get_meta(FIRST_SUBMIT_KEY)))


def past_deadline(job: JobConfig, ledger: Ledger, now: datetime | None = None) -> bool:
    at = deadline_of(job, ledger)
    return at is not None and (now or datetime.now(UTC)) >= at


def realtime_due(job: JobConfig, ledger: Ledger) -> bool:
    """Whether the job's unsent files go out in real time rather than as batches."""
    return job.mode is SendMode.realtime or past_deadline(job, ledger)


def cancel_at_deadline(job: JobConfig, ledger: Ledger, gateway: BatchGateway) -> list[str]:
    """Past the deadline, cancel (as halfrate, not the user) every batch not ended yet."""
    if not past_deadline(job, ledger):
        return []
    done = ledger.system_cancels()
    canceled = []
    for record in ledger.records():
        batch_id = record.batch_id
        if record.status is not BatchStatus.submitted or record.realtime or batch_id is None:
            continue
        if batch_id in done:
            continue  # asked already: it is canceling
        ledger.record_system_cancel(batch_id, DEADLINE_REASON)  # before the API is asked
        try:
            batch = gateway.cancel(batch_id)
        except APIError as exc:
            if exc.status not in (400, 409):  # 400: it ended meanwhile
                raise
            batch = gateway.retrieve(batch_id, created_at=record.created_at)
        ledger.update_progress(batch.model_dump(mode="json"))
        canceled.append(batch_id)
        log.warning("%s: canceled at the deadline; its unanswered rows go real-time", batch_id)
    return canceled


def realtime_files(
    job: JobConfig, ledger: Ledger, paths: JobPaths, attempt: int, purpose: str
) -> list[BatchRecord]:
    """The files of `attempt` and `purpose` to send in real time now (remainders built)."""
    due = realtime_due(job, ledger)
    canceled = ledger.system_cancels()
    known = {r.file.path for r in ledger.records()}
    for record in ledger.records(attempt=attempt, purpose=purpose):
        if record.batch_id in canceled and record.status in (
            BatchStatus.downloaded,
            BatchStatus.loaded,
        ):
            path = record.file.path.removesuffix(".jsonl") + REMAINDER_SUFFIX
            if path not in known:
                _add_remainder(job, ledger, paths, record, path)
    return [
        r
        for r in ledger.records(attempt=attempt, purpose=purpose)
        if (r.realtime and r.status is BatchStatus.submitted) or (due and r.status is None)
    ]


def _add_remainder(
    job: JobConfig, ledger: Ledger, paths: JobPaths, record: BatchRecord, path: str
) -> None:
    assert record.batch_id is not None
    parsed = pl.read_parquet(
        staged_outcomes(paths, job, record.batch_id), columns=["custom_id", "result_type"]
    )
    keep = set(parsed.filter(pl.col("result_type").is_in(UNANSWERED))["custom_id"].to_list())
    remainder = subset_request_file(paths, record.file, keep, path)
    if remainder is not None:
        ledger.add_request_files([remainder])
        log.info("%s: %d requests the deadline left go real-time", path, remainder.n_requests)
