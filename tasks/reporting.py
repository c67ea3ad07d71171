"""What the Prefect UI shows of a job: progress while waiting, events, and the final report."""

import time
from datetime import UTC, datetime
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event
from prefect.runtime import task_run

from halfrate.config import JobConfig
from halfrate.ledger import BatchRecord
from halfrate.progress import Progress
from halfrate.summary import ChainSummary, JobSummary, render_chain_markdown, render_markdown

# One progress artifact per await task run, reused across its retries (same process), and
# updated only when it has news: every poll would otherwise write it (and its event) again,
# 2,880 times over a 24-hour wait at the default interval.
_progress_artifacts: dict[str, tuple[UUID, int, float]] = {}  # run -> id, ended, updated at
PROGRESS_REFRESH_SECONDS = 600.0  # the "waited" figure still moves every 10 minutes


def artifact_key(job: JobConfig, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"halfrate-{job.name}-{what}".replace("_", "-").lower()


def report_progress(job: JobConfig, attempt: int, progress: Progress) -> bool:
    """Create or update the run's progress artifact (percent of batches ended) if it changed;
    returns whether it did."""
    percent = 100.0 * progress.batches_ended / max(progress.batches_total, 1)
    run_id = task_run.get_id() or "local"
    known = _progress_artifacts.get(run_id)
    now = time.monotonic()
    unchanged = known is not None and known[1] == progress.batches_ended
    if unchanged and known is not None and now - known[2] < PROGRESS_REFRESH_SECONDS:
        return False
    description = progress_markdown(job, attempt, progress)
    if known is None:
        artifact_id = create_progress_artifact(
            progress=percent, key=artifact_key(job, "progress"), description=description
        )
    else:
        artifact_id = known[0]
        update_progress_artifact(artifact_id, percent, description=description)
    _progress_artifacts[run_id] = (artifact_id, progress.batches_ended, now)
    return True


def progress_markdown(job: JobConfig, attempt: int, progress: Progress) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in progress.request_counts.items())
    waited = ""
    if progress.oldest_created_at is not None:
        minutes = (datetime.now(UTC) - progress.oldest_created_at).total_seconds() / 60
        waited = f"; waited {minutes:.1f} min"
    expiry = ""
    if progress.earliest_expires_at is not None:
        expiry = f"; first expiry {progress.earliest_expires_at:%Y-%m-%d %H:%M} UTC"
    return (
        f"**{job.name}**, attempt {attempt}: {progress.batches_ended}/{progress.batches_total} "
        f"batches ended{waited}{expiry}. Requests: {counts} (the API reports per-request "
        "counts only once a batch has ended)."
    )


def emit_batch_event(event: str, job: JobConfig, record: BatchRecord) -> None:
    """An event per batch (the Batches API has no webhooks): automations can react to it."""
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"halfrate.batch.{record.batch_id}",
            "prefect.resource.name": f"{job.name} batch {record.batch_id}",
        },
        related=[_job_resource(job)],
        payload={
            "job": job.name,
            "batch_id": record.batch_id,
            "attempt": record.file.attempt,
            "purpose": record.file.purpose,
            "requests": record.file.n_requests,
            "request_counts": record.request_counts,
        },
    )


def emit_job_event(event: str, job_name: str, payload: dict[str, object]) -> None:
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"halfrate.job.{job_name}",
            "prefect.resource.name": job_name,
        },
        payload={"job": job_name, **payload},
    )


def _job_resource(job: JobConfig) -> dict[str, str]:
    return {
        "prefect.resource.id": f"halfrate.job.{job.name}",
        "prefect.resource.role": "job",
        "prefect.resource.name": job.name,
    }


def publish_summary(job: JobConfig, summary: JobSummary) -> None:
    """The run's final report: a summary, and a table of every row that did not succeed."""
    create_markdown_artifact(
        key=artifact_key(job, "summary"),
        markdown=render_markdown(summary),
        description=f"halfrate job {job.name}: outcomes, cost, savings, cache hit rate",
    )
    if summary.failures:
        create_table_artifact(
            key=artifact_key(job, "failures"),
            table=[f.model_dump(mode="json") for f in summary.failures],
            description=f"Rows of {job.name} that did not succeed, with reasons "
            f"(first {len(summary.failures)} of {summary.rows_not_succeeded})",
        )


def publish_chain_summary(chain: ChainSummary) -> None:
    """A chain's report: each stage's outcome and cost, and the total."""
    names = "-".join(s.job_name for s in chain.stages)
    create_markdown_artifact(
        key=f"halfrate-chain-{names}".replace("_", "-").lower()[:100],
        markdown=render_chain_markdown(chain),
        description="halfrate chain: cost per stage and in total",
    )
