"""The steps before anything is sent: prepare, preflight, extract, estimate, build."""

import logging
from pathlib import Path

from halfrate import finish, pilot
from halfrate.build import build_requests
from halfrate.config import CacheTTL, JobConfig, JobOverrides, resolve_job
from halfrate.cost_model import CostEstimate
from halfrate.estimate import check_budget, estimate_job, load_estimate, save_estimate
from halfrate.extract import ExtractSummary, extract_rows
from halfrate.kinds import kind_of
from halfrate.ledger import CANCEL_KEY, BatchStatus, Ledger, RequestFile
from halfrate.preflight import preflight as preflight_checks
from halfrate.results import staged_outcomes
from halfrate.retry import plan_retry
from halfrate.settings import Settings
from halfrate.steps_base import Step
from halfrate.warehouse import WarehouseBusyError, connect
from halfrate.workspace import JobConflictError, job_paths, open_job

log = logging.getLogger("halfrate.pipeline")  # a part of the pipeline, and logs as the pipeline


def prepare(
    job_file: str | None,
    spec: JobOverrides | None,
    restart: bool,
    settings: Settings,
    *,
    run: bool = False,
) -> JobConfig:
    """Resolve the job and open (or resume) its folder.

    `run`: this starts a run of the job, which resumes rows an earlier cancel stopped.
    """
    job = resolve_job(Path(job_file) if job_file else None, spec)
    if restart:
        _refuse_restart_in_flight(job.name, settings)
    paths = open_job(settings.workdir, job, restart=restart)
    ledger = Ledger(paths.ledger)
    if run and ledger.cancel_requested():
        log.info("job %s: resuming after the user's cancel", job.name)
        ledger.set_meta(CANCEL_KEY, None)
    return job


def preflight(job: JobConfig, settings: Settings) -> None:
    """Before any paid call: the warehouse, the job folder and the key work (and no lost ledger),
    and the warehouse has no table of the job's kind it could not load into."""
    step = Step.of(job, settings)
    preflight_checks(job.name, step.paths, settings, step.gateway())
    _check_kind_tables(job, settings)


def _check_kind_tables(job: JobConfig, settings: Settings) -> None:
    try:
        con = connect(settings.warehouse, read_only=True, retry_seconds=0)
    except (FileNotFoundError, WarehouseBusyError):
        return  # a new warehouse has no such table; a busy one is checked again at the load
    with con:
        kind_of(job).check_tables(con, job)


_IN_FLIGHT = (BatchStatus.intent, BatchStatus.submitted)


def _refuse_restart_in_flight(name: str, settings: Settings) -> None:
    """Moving a job aside would forget batches it is paying for: cancel or finish them first."""
    ledger_file = job_paths(settings.workdir, name).ledger
    if not ledger_file.exists():
        return
    flying = [
        r.batch_id or r.file.path for r in Ledger(ledger_file).records() if r.status in _IN_FLIGHT
    ]
    if flying:
        raise JobConflictError(
            f"job {name!r} has {len(flying)} batch(es) in flight ({', '.join(flying[:3])}); "
            f"let it finish (rerun without --restart) or `halfrate cancel {name}` first"
        )


def extract(job: JobConfig, settings: Settings) -> ExtractSummary:
    step = Step.of(job, settings)
    return extract_rows(job, step.paths, settings)


def build(job: JobConfig, settings: Settings, attempt: int) -> list[RequestFile]:
    """Build attempt 1 from all valid rows, or a retry attempt from the rows that need it."""
    step = Step.of(job, settings)
    if step.ledger.cancel_requested():
        return []  # the user canceled this run: no new attempt
    sample: list[str] = []
    if attempt == 1:
        rows: Path | None = step.paths.rows
        prime = job.prime_cache and job.cache_ttl is not CacheTTL.none and _estimate_primes(step)
        size = pilot.planned_size(job, step.ledger)
        if size and not step.ledger.records(attempt=1):
            sample = pilot.sample_row_ids(step.paths.rows, size, job.fingerprint())
    else:
        stage_attempt_outcomes(step, attempt - 1)
        rows, prime = plan_retry(step.paths, step.ledger, attempt), False
    if rows is None:
        return []
    prime = prime and not finish.realtime_due(job, step.ledger)  # real time reads the cache
    if settings.max_queued_requests is not None:  # each file fits in the job's queue cap
        cap = min(settings.max_requests_per_batch, settings.max_queued_requests)
        settings = settings.model_copy(update={"max_requests_per_batch": cap})
    return build_requests(job, step.paths, step.ledger, attempt, rows, settings, prime, sample)


def stage_attempt_outcomes(step: Step, attempt: int) -> None:
    """The retry outcomes of the attempt's downloaded batches, staged (parsed from the raw
    results where no load did), so planning a retry never waits for the warehouse."""
    for record in step.ledger.records(attempt=attempt):
        if record.batch_id is not None and step.paths.results_file(record.batch_id).exists():
            staged_outcomes(step.paths, step.job, record.batch_id)


ESTIMATE_FILE = "estimate.json"


def estimate(
    job: JobConfig, settings: Settings, *, enforce_budget: bool = True
) -> CostEstimate | None:
    """Price attempt 1 before it is built; enforce the budget while nothing is submitted yet.

    It decides the priming batch (skipped when the prefix is too short to cache): the estimate
    is kept in the job folder and `build` follows it. None when there are no rows to send.
    """
    step = Step.of(job, settings)
    cost = estimate_job(step.gateway(), job, step.paths.rows)
    if cost is None:
        return None
    save_estimate(step.paths.root / ESTIMATE_FILE, cost)
    records = step.ledger.records(attempt=1)
    if enforce_budget and not any(r.batch_id or r.status for r in records):
        share = pilot.sent_first_share(job, step.ledger, step.paths.rows)
        if share is None:
            check_budget(job, cost)
        else:  # the whole job is checked against the pilot's projection, before the rest
            pilot.check_pilot_budget(job, cost, share)
    return cost


def _estimate_primes(step: Step) -> bool:
    """The saved estimate's priming decision (prime when no estimate was made)."""
    saved = load_estimate(step.paths.root / ESTIMATE_FILE)
    return saved is None or saved.prime


def phases(files: list[RequestFile]) -> list[str]:
    """The prime batch (if any) must end before the main batches are sent."""
    purposes = {f.purpose for f in files}
    return [p for p in PHASES if p in purposes]


PHASES = ("prime", "pilot", "main")
"""The order of attempt 1's phases: each ends (and is loaded) before the next is sent."""
