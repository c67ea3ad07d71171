"""What the Prefect UI shows of a job: progress while waiting, events, and the final report."""

import time
from datetime import UTC, datetime
from uuid import UUID

from prefect import get_client
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.settings import get_current_settings

from halfrate.config import JobConfig
from halfrate.ledger import BatchRecord
from halfrate.progress_report import AttemptProgress, headline, render_progress
from halfrate.summary import ChainSummary, JobSummary, render_chain_markdown, render_markdown

# One progress artifact per flow run (keyed by its job, so the job's page lists one per run)
# and beside it a Markdown artifact with the counts as a table (a progress artifact's
# description renders no table). Both are made at the run's first poll and updated in place by
# every later one, across phases and attempts, only when there is news: the counts moved, or
# the "waited" and "expires in" figures are 10 minutes old (the text says "as of" when).
_progress_artifacts: dict[str, tuple[UUID, UUID, AttemptProgress, float]] = {}
PROGRESS_REFRESH_SECONDS = 600.0


def artifact_key(job: JobConfig, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"halfrate-{job.name}-{what}".replace("_", "-").lower()


def report_progress(job: JobConfig, progress: AttemptProgress) -> bool:
    """Create or update the run's progress artifacts (the percent of the attempt's requests
    ended, and the counts) if they have news; returns whether they were written."""
    run_id = flow_run.get_id() or "local"
    known = _progress_artifacts.get(run_id)
    now = time.monotonic()
    if known is not None and known[2] == progress and now - known[3] < PROGRESS_REFRESH_SECONDS:
        return False
    at = datetime.now(UTC)
    line, table = headline(progress, at), render_progress(progress, at)
    if known is None:
        bar = create_progress_artifact(
            progress=progress.percent, key=artifact_key(job, "progress"), description=line
        )
        counts = create_markdown_artifact(
            markdown=table,
            key=artifact_key(job, "progress-counts"),
            description=f"halfrate job {job.name}: the requests of the attempt, by outcome",
        )
    else:
        bar, counts = known[0], known[1]
        update_progress_artifact(bar, progress.percent, description=line)
        with get_client(sync_client=True) as client:
            client.update_artifact(counts, ArtifactUpdate(data=table))
    _progress_artifacts[run_id] = (bar, counts, progress, now)
    return True


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
    """The run's final report: a table of every row that did not succeed, a link to it, and the
    summary, which states the partial failure in words and links the table too."""
    failures_url = None
    if summary.failures:
        table_id = create_table_artifact(
            key=artifact_key(job, "failures"),
            table=[f.model_dump(mode="json") for f in summary.failures],
            description=f"Rows of {job.name} that did not succeed, with reasons "
            f"(first {len(summary.failures)} of {summary.rows_not_succeeded})",
        )
        failures_url = artifact_url(table_id)
        if failures_url is not None:
            create_link_artifact(
                key=artifact_key(job, "failures-link"),
                link=failures_url,
                link_text=f"{summary.rows_not_succeeded:,} of {summary.rows:,} rows of "
                f"{job.name} did not succeed: the failures table",
                description=f"halfrate job {job.name}: the rows that did not succeed, and why",
            )
    create_markdown_artifact(
        key=artifact_key(job, "summary"),
        markdown=render_markdown(summary, failures_url),
        description=f"halfrate job {job.name}: outcomes, cost, savings, cache hit rate",
    )


def artifact_url(artifact_id: UUID) -> str | None:
    """An artifact's page in the Prefect UI: the path of the V2 UI, Prefect 3.9's default (a
    server without it redirects to the same page of the V1 UI); Prefect Cloud has no /v2.
    None when no UI URL is known (PREFECT_UI_URL, else derived from PREFECT_API_URL)."""
    base = get_current_settings().ui_url
    if not base:
        return None
    prefix = "" if "prefect.cloud" in base else "/v2"
    return f"{base.rstrip('/')}{prefix}/artifacts/artifact/{artifact_id}"


def publish_chain_summary(chain: ChainSummary) -> None:
    """A chain's report: each stage's outcome and cost, and the total."""
    names = "-".join(s.job_name for s in chain.stages)
    create_markdown_artifact(
        key=f"halfrate-chain-{names}".replace("_", "-").lower()[:100],
        markdown=render_chain_markdown(chain),
        description="halfrate chain: cost per stage and in total",
    )
