"""Steps on a whole job by name: cancel it, summarize it, adopt a batch into it."""

from pathlib import Path
from typing import Any

from halfrate import finish
from halfrate.adopt import adopt_batch
from halfrate.config import JobConfig
from halfrate.endpoint import is_emulator
from halfrate.gateway import shared_gateway
from halfrate.ledger import BatchRecord, BatchStatus, Ledger
from halfrate.naming import job_identity
from halfrate.progress import cancel_batches
from halfrate.settings import Settings
from halfrate.steps_base import Step
from halfrate.summary import JobSummary
from halfrate.summary import summarize as summarize_job
from halfrate.warehouse import WarehouseBusyError, connect
from halfrate.workspace import JobConflictError, job_paths


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
            "on_emulator": is_emulator(settings.anthropic_base_url),
            "note": f"{note} Results are staged in {step_root(job, settings)}; "
            f"run `halfrate load {job.name}` when the warehouse is free.",
        }
    )


def step_root(job: JobConfig, settings: Settings) -> Path:
    return job_paths(settings.workdir, job.name).root


def job_name_of(parameters: dict[str, Any], settings: Settings) -> str | None:
    """The job a flow run's parameters name (for hooks that only have the parameters)."""
    identity = job_identity(parameters)
    return identity[0] if identity else None


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
