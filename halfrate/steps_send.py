"""The sending steps: submit batches (or send in real time), and check how they stand."""

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.parquet as pq

from halfrate import finish, progress_report
from halfrate.backpressure import SubmitGate, hold_released
from halfrate.config import JobConfig
from halfrate.ledger import UNSENT, BatchRecord
from halfrate.load import load_job, staged_rows
from halfrate.progress import Progress, check_batches
from halfrate.progress_report import AttemptProgress
from halfrate.realtime import RealtimePolicy, RealtimeSent, send_file
from halfrate.settings import Settings
from halfrate.steps_base import Step
from halfrate.steps_job import known_batch_ids
from halfrate.submit import SubmitPolicy, submit_pending
from halfrate.warehouse import connect, ensure_schema
from halfrate.workspace import JobPaths, job_lock

log = logging.getLogger("halfrate.pipeline")  # a part of the pipeline, and logs as the pipeline


def submit(job: JobConfig, settings: Settings, attempt: int, purpose: str) -> list[BatchRecord]:
    """Send the attempt's files, then record the batches in the warehouse too (best effort).

    The warehouse's record outlives the job folder: if that is deleted, a rerun finds the
    job's batches there and refuses to send them again (see `halfrate.preflight`).
    """
    step = Step.of(job, settings)
    finish.mark_first_submit(step.ledger)
    gate = SubmitGate(
        step.ledger,
        settings.max_queued_requests,
        batches_allowed=lambda: not finish.realtime_due(job, step.ledger),
        hold_backoff=10 * settings.poll_interval,
    )
    try:
        return submit_pending(
            step.ledger,
            step.paths,
            step.gateway(),
            attempt=attempt,
            purpose=purpose,
            known_batch_ids=lambda: known_batch_ids(settings.workdir),
            policy=submit_policy(settings),
            gate=gate,
        )
    finally:
        register_batches(step)


def register_batches(step: "Step") -> None:
    """Upsert the job and every batch its ledger knows into the warehouse, if it is free."""
    try:
        con = connect(
            step.settings.warehouse, retry_seconds=min(10.0, step.settings.load_retry_seconds)
        )
        with con:
            ensure_schema(con)
            load_job(con, step.job, step.paths, step.ledger, _StagedCounts.of(step.paths))
    except Exception as exc:  # never let the record of a batch hide the submit's own outcome
        log.warning("could not record the batches in %s now: %s", step.settings.warehouse, exc)


@dataclass(frozen=True)
class _StagedCounts:
    valid_rows: int
    quarantined_rows: int

    @classmethod
    def of(cls, paths: JobPaths) -> "_StagedCounts":
        return cls(staged_rows(paths.rows), pq.read_metadata(paths.quarantine).num_rows)


def submit_policy(settings: Settings) -> SubmitPolicy:
    """Reconciliation patience, scaled from one setting (10 s against the real API)."""
    wait = settings.reconcile_wait
    return SubmitPolicy(propagation_delay=wait, backoff=(0.2 * wait, wait, 3 * wait))


MAX_WAVES = 500
"""Submit-and-wait rounds of one phase (each waits for a batch to end or a retry-after)."""


def realtime_policy(settings: Settings) -> RealtimePolicy:
    """Real-time pacing: a refused call waits 1, 2, 4 ... 32 s (at a 30 s poll interval)."""
    scale = settings.poll_interval / 30
    backoff = tuple(scale * 2**n for n in range(6))
    return RealtimePolicy(concurrency=settings.realtime_concurrency, backoff=backoff)


def check(job: JobConfig, settings: Settings, attempt: int, purpose: str | None = None) -> Progress:
    """The await sensor's one check: past the deadline, cancel the batches not ended first;
    then how the attempt's batches stand, and whether files held back may be sent now."""
    step = Step.of(job, settings)
    gateway = step.gateway()
    finish.cancel_at_deadline(job, step.ledger, gateway)
    progress = check_batches(step.ledger, gateway, attempt=attempt, purpose=purpose)
    deadline = finish.deadline_of(job, step.ledger)
    ahead = deadline if deadline is not None and deadline > datetime.now(UTC) else None
    ready = _ready_to_send(step, attempt, purpose)
    return progress.model_copy(update={"ready_to_send": ready, "deadline_at": ahead})


def attempt_progress(
    job: JobConfig,
    settings: Settings,
    attempt: int,
    phase: str,
    purposes: Collection[str] | None = None,
) -> AttemptProgress:
    """The attempt's progress in requests, from the ledger (no API call)."""
    records = Step.of(job, settings).ledger.records(attempt=attempt)
    return progress_report.attempt_progress(job.name, records, attempt, phase, purposes)


def _ready_to_send(step: Step, attempt: int, purpose: str | None) -> int:
    ledger = step.ledger
    unsent = [r for r in ledger.records(attempt=attempt, purpose=purpose) if r.status in UNSENT]
    if not unsent or ledger.cancel_requested() or finish.realtime_due(step.job, ledger):
        return 0
    return len(unsent) if hold_released(ledger) else 0


def send_realtime(
    job: JobConfig, settings: Settings, attempt: int, purpose: str
) -> list[RealtimeSent]:
    """Send in real time what is due (mode realtime, or what the deadline left); parse it."""
    step = Step.of(job, settings)
    policy = realtime_policy(settings)
    sent: list[RealtimeSent] = []
    tried = False
    try:
        with job_lock(step.paths):  # one process sends a job's requests at a time
            for record in finish.realtime_files(job, step.ledger, step.paths, attempt, purpose):
                if step.ledger.cancel_requested():
                    break
                tried = True
                finish.mark_first_submit(step.ledger)
                done = send_file(step.ledger, step.paths, step.gateway(), record, policy)
                sent.append(done)
    finally:
        if tried:  # the warehouse knows every pseudo-batch, as every batch
            register_batches(step)
    return sent
