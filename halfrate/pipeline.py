"""One function per pipeline step, composed from the core modules.

The Prefect tasks in tasks/ are thin wrappers over these; the CLI and tests call them too.
Every step is idempotent and resumable: it reads the job's ledger and staged files to find
what is left to do, so rerunning a job after a crash at any point picks up where it stopped.
"""

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from halfrate import finish, pilot, progress_report
from halfrate.adopt import adopt_batch
from halfrate.backpressure import SubmitGate, hold_released
from halfrate.build import build_requests
from halfrate.config import CacheTTL, JobConfig, JobOverrides, JobSpec, resolve_job
from halfrate.cost_model import CostEstimate
from halfrate.download import DownloadSummary, download_ended
from halfrate.endpoint import is_emulator
from halfrate.estimate import check_budget, estimate_job, load_estimate, save_estimate
from halfrate.extract import ExtractSummary, extract_rows
from halfrate.gateway import BatchGateway, shared_gateway
from halfrate.job_estimates import sync_estimate_files
from halfrate.kinds import kind_of
from halfrate.kinds.base import SendMode
from halfrate.ledger import CANCEL_KEY, UNSENT, BatchRecord, BatchStatus, Ledger, RequestFile
from halfrate.load import load_batch, load_job, staged_rows
from halfrate.pilot_report import PilotReport, load_report, measure, save_report
from halfrate.preflight import preflight as preflight_checks
from halfrate.progress import Progress, cancel_batches, check_batches
from halfrate.progress_hooks import step as progress_step
from halfrate.progress_report import AttemptProgress
from halfrate.realtime import RealtimePolicy, RealtimeSent, send_file
from halfrate.realtime_log import load_lost_calls
from halfrate.results import staged_outcomes
from halfrate.retry import plan_retry
from halfrate.settings import Settings
from halfrate.stops import load_stops
from halfrate.submit import SubmitPolicy, submit_pending
from halfrate.summary import JobSummary
from halfrate.summary import summarize as summarize_job
from halfrate.warehouse import WarehouseBusyError, connect, ensure_schema
from halfrate.workspace import JobConflictError, JobPaths, job_lock, job_paths, open_job

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """What every step needs: the job, its folder and ledger, and the settings."""

    job: JobConfig
    settings: Settings
    paths: JobPaths
    ledger: Ledger

    @classmethod
    def of(cls, job: JobConfig, settings: Settings) -> "Step":
        paths = job_paths(settings.workdir, job.name)
        return cls(job, settings, paths, Ledger(paths.ledger))

    def gateway(self) -> BatchGateway:
        return shared_gateway(self.settings)


@dataclass(frozen=True)
class LoadResult:
    """Batches loaded into the warehouse, and those left staged because it was busy."""

    loaded: list[str]
    deferred: list[str]
    message: str | None = None
    more_to_send: bool = True
    """False once the attempt has settled and no row needs another try: the run is done
    sending (it builds no empty next attempt)."""


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
        _stage_outcomes(step, attempt - 1)
        rows, prime = plan_retry(step.paths, step.ledger, attempt), False
    if rows is None:
        return []
    prime = prime and not finish.realtime_due(job, step.ledger)  # real time reads the cache
    if settings.max_queued_requests is not None:  # each file fits in the job's queue cap
        cap = min(settings.max_requests_per_batch, settings.max_queued_requests)
        settings = settings.model_copy(update={"max_requests_per_batch": cap})
    return build_requests(job, step.paths, step.ledger, attempt, rows, settings, prime, sample)


def _stage_outcomes(step: Step, attempt: int) -> None:
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
PILOT_FILE = "pilot.json"


def plan_pilot(job: JobConfig, settings: Settings, rows: int | None) -> JobConfig:
    """The job with its pilot's size set (`halfrate pilot --rows`), checked against what
    attempt 1 already holds."""
    return pilot.plan(job, Step.of(job, settings).ledger, rows)


def project(job: JobConfig, settings: Settings) -> PilotReport | None:
    """The pilot's report and projection of the whole job (None: attempt 1 has no pilot).

    Made once the pilot's batches are downloaded and kept as pilot.json (the projection the
    budget is checked against), then recorded in the warehouse's job_estimates.
    """
    step = Step.of(job, settings)
    if not pilot.has_pilot(step.ledger):
        return None
    path = step.paths.root / PILOT_FILE
    report = load_report(path)
    if report is None:
        report = measure(job, step.paths, step.ledger, step.paths.root / ESTIMATE_FILE)
        save_report(path, report)
        record_estimates(step)
    return report


def check_pilot(job: JobConfig, settings: Settings) -> PilotReport | None:
    """Before attempt 1's main batches: project the job from its pilot and stop (raise
    PilotBudgetError) when the projection is above max_cost_usd. Once a main batch was sent
    the budget is no longer checked (the spend it guards against has begun)."""
    report = project(job, settings)
    main = Step.of(job, settings).ledger.records(attempt=1, purpose="main")
    if report is not None and not any(r.batch_id or r.status for r in main):
        pilot.check_projection(job, report)
    return report


def record_estimates(step: "Step", con: "DuckDBPyConnection | None" = None) -> None:
    """Sync the job's static estimate and pilot projection into job_estimates (best effort
    without `con`: a busy warehouse gets them at the next load)."""
    files = (step.paths.root / ESTIMATE_FILE, step.paths.root / PILOT_FILE)
    realtime = step.job.mode is SendMode.realtime
    if con is not None:
        sync_estimate_files(con, step.job.name, *files, realtime)
        return
    try:
        with connect(step.settings.warehouse, retry_seconds=10.0) as own:
            ensure_schema(own)
            sync_estimate_files(own, step.job.name, *files, realtime)
    except Exception as exc:  # the files keep them; the next load records them
        log.warning("could not record the estimates in %s now: %s", step.settings.warehouse, exc)


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


class Downloaded(BaseModel):
    """The batches downloaded and verified, and the adoptions their results proved wrong."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batches: list[DownloadSummary]
    released: list[str]
    """Request files whose adopted batch was not theirs: to be reconciled and sent again."""


def download(job: JobConfig, settings: Settings, attempt: int) -> Downloaded:
    """Download and verify every ended batch (the load parses it)."""
    step = Step.of(job, settings)
    had_batch = {r.file.path for r in step.ledger.records(attempt=attempt) if r.batch_id}
    poll = settings.poll_interval  # 30 s gives the backoff (1, 5, 15) s
    summaries = download_ended(
        step.ledger,
        step.paths,
        step.gateway(),
        attempt=attempt,
        backoff=(poll / 30, poll / 6, poll / 2),
    )
    released = []
    for record in step.ledger.records(attempt=attempt):
        if record.file.path in had_batch and record.batch_id is None:
            released.append(record.file.path)
    return Downloaded(batches=summaries, released=released)


def load(
    job: JobConfig, settings: Settings, extracted: ExtractSummary, attempt: int | None = None
) -> LoadResult:
    """Load every downloaded batch into the warehouse; if it stays busy, leave them staged.
    With `attempt`, also say whether a next attempt has rows to send (planning it)."""
    step = Step.of(job, settings)
    todo = [r for r in step.ledger.records() if r.status is BatchStatus.downloaded]
    try:
        con = connect(settings.warehouse, retry_seconds=settings.load_retry_seconds)
    except WarehouseBusyError as exc:
        more = _more_to_send(step, attempt)
        return LoadResult([], [r.batch_id or "" for r in todo], str(exc), more)
    results = sum(r.file.n_requests for r in todo)
    with con, progress_step(f"load into {settings.warehouse.name}", results, "results") as progress:
        ensure_schema(con)
        load_job(con, job, step.paths, step.ledger, extracted)
        for record in todo:
            load_batch(con, job, step.paths, record)
            step.ledger.set_status(record.batch_id or "", BatchStatus.loaded)
            progress.advance(record.file.n_requests)
        load_stops(con, job.name, step.paths, step.ledger)
        load_lost_calls(con, job.name, step.ledger)
        record_estimates(step, con)
    return LoadResult([r.batch_id or "" for r in todo], [], None, _more_to_send(step, attempt))


_SETTLED = (BatchStatus.downloaded, BatchStatus.loaded, BatchStatus.split_up, BatchStatus.failed)


def _more_to_send(step: Step, attempt: int | None) -> bool:
    """Whether attempt + 1 may have rows to send. Once every file of `attempt` has settled, the
    retry is planned now from the staged outcomes (the build reuses the plan); before that, or
    with files left over, the build decides (and says what is wrong)."""
    if attempt is None:
        return True
    if attempt >= step.job.max_attempts or step.ledger.cancel_requested():
        return False
    if any(r.status not in _SETTLED for r in step.ledger.records(attempt=attempt)):
        return True
    _stage_outcomes(step, attempt)
    return plan_retry(step.paths, step.ledger, attempt + 1) is not None


def load_staged(job_name: str, settings: Settings) -> LoadResult:
    """Load what a job has staged but not loaded (after the warehouse was busy)."""
    from halfrate.status import read_job

    job = read_job(settings.workdir, job_name)
    return load(job, settings, extract(job, settings))


def cancel(job_name: str, settings: Settings) -> list[str]:
    """Cancel, for the user, every batch of the job that has not ended (it stops the spend).

    A running job notices: it loads what the batches returned, sends nothing more and ends
    Cancelled; its canceled rows end `canceled`. A later run resumes them.
    """
    paths = job_paths(settings.workdir, job_name)
    if not paths.ledger.exists():
        raise FileNotFoundError(f"no job named {job_name!r} in {settings.workdir}")
    gateway = shared_gateway(settings)
    return cancel_batches(Ledger(paths.ledger), gateway)


def user_cancel(job: JobConfig, settings: Settings) -> str | None:
    """Why the run must end Cancelled (the user canceled the job), or None."""
    at = Step.of(job, settings).ledger.cancel_requested()
    if at is None:
        return None
    return (
        f"job {job.name} canceled by the user at {at}: its canceled rows are recorded as "
        f"canceled and nothing more was sent; `halfrate run` resumes them"
    )


def summarize(job: JobConfig, settings: Settings) -> JobSummary:
    """The job's outcome, read from the warehouse (waits while another process writes it)."""
    step = Step.of(job, settings)
    records = step.ledger.records()
    staged = sum(1 for r in records if r.status is BatchStatus.downloaded)
    try:
        con = connect(settings.warehouse, read_only=True, retry_seconds=settings.load_retry_seconds)
    except WarehouseBusyError as exc:
        return staged_summary(job, settings, records, str(exc))
    with con:
        summary = summarize_job(con, job, settings.warehouse)
    deadline = finish.deadline_of(job, step.ledger)
    return summary.model_copy(
        update={
            "staged_not_loaded": staged,
            "deadline": deadline.isoformat(timespec="seconds") if deadline else None,
            "on_emulator": is_emulator(settings.anthropic_base_url),
        }
    )


def staged_summary(
    job: JobConfig, settings: Settings, records: list[BatchRecord], note: str
) -> JobSummary:
    """What the ledger alone can say when the warehouse cannot be read (nothing is lost)."""
    counts: dict[str, int] = {}
    for r in records:
        for key, value in (r.request_counts or {}).items():
            counts[key] = counts.get(key, 0) + value
    return JobSummary.empty(job.name, job.kind, job.model, str(settings.warehouse)).model_copy(
        update={
            "result_types": {k: v for k, v in counts.items() if v},
            "batches": sum(1 for r in records if r.batch_id),
            "attempts": max((r.file.attempt for r in records), default=0),
            "staged_not_loaded": sum(1 for r in records if r.status is BatchStatus.downloaded),
            "note": f"{note} Results are staged in {step_root(job, settings)}; "
            f"run `halfrate load {job.name}` when the warehouse is free.",
        }
    )


def step_root(job: JobConfig, settings: Settings) -> Path:
    return job_paths(settings.workdir, job.name).root


def job_name_of(parameters: dict[str, Any], settings: Settings) -> str | None:
    """The job a flow run's parameters name (for hooks that only have the parameters)."""
    try:
        spec = parameters.get("job")
        spec = JobSpec.model_validate(spec) if isinstance(spec, dict) else spec
        return resolve_job(
            Path(parameters["job_file"]) if parameters.get("job_file") else None, spec
        ).name
    except (ValueError, KeyError):
        return None


def adopt(job_name: str, request_file: str, batch_id: str, settings: Settings) -> BatchRecord:
    """Tie a batch a person identified to a request file (after an ambiguity, or to replace a
    wrong adoption)."""
    paths = job_paths(settings.workdir, job_name)
    if not paths.ledger.exists():
        raise FileNotFoundError(f"no job named {job_name!r} in {settings.workdir}")
    others = known_batch_ids(settings.workdir, exclude=paths.ledger)
    if batch_id in others:
        raise JobConflictError(f"{batch_id} already belongs to another job in {settings.workdir}")
    gateway = shared_gateway(settings)
    return adopt_batch(Ledger(paths.ledger), paths, gateway, request_file, batch_id)


def known_batch_ids(workdir: Path, exclude: Path | None = None) -> set[str]:
    """Batch ids no reconciliation may adopt: those any job in this workdir owns, and those
    found to be foreign (adopted by mistake once)."""
    ids: set[str] = set()
    for ledger_file in workdir.glob("*/ledger.sqlite"):
        if ledger_file != exclude:
            ids |= Ledger(ledger_file).unadoptable_batch_ids()
    return ids
