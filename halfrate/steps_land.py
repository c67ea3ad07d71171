"""The landing steps: download the ended batches, load them into the warehouse."""

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from halfrate.config import JobConfig
from halfrate.download import DownloadSummary, download_ended
from halfrate.extract import ExtractSummary
from halfrate.ledger import BatchStatus
from halfrate.load import load_batch, load_job
from halfrate.progress_hooks import step as progress_step
from halfrate.realtime_log import load_lost_calls
from halfrate.retry import plan_retry
from halfrate.settings import Settings
from halfrate.steps_base import Step
from halfrate.steps_pilot import record_estimates
from halfrate.steps_prepare import extract, stage_attempt_outcomes
from halfrate.stops import load_stops
from halfrate.warehouse import WarehouseBusyError, connect, ensure_schema


@dataclass(frozen=True)
class LoadResult:
    """Batches loaded into the warehouse, and those left staged because it was busy."""

    loaded: list[str]
    deferred: list[str]
    message: str | None = None
    more_to_send: bool = True
    """False once the attempt has settled and no row needs another try: the run is done
    sending (it builds no empty next attempt)."""


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
    stage_attempt_outcomes(step, attempt)
    return plan_retry(step.paths, step.ledger, attempt + 1) is not None


def load_staged(job_name: str, settings: Settings) -> LoadResult:
    """Load what a job has staged but not loaded (after the warehouse was busy)."""
    from halfrate.status import read_job

    job = read_job(settings.workdir, job_name)
    return load(job, settings, extract(job, settings))
