"""Prefect tasks: fix the pilot's size, and project the job from the pilot's results."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.pilot import render_report
from halfrate.pilot_report import PilotReport
from halfrate.summary import format_usd
from tasks.reporting import artifact_key
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="plan-pilot", task_run_name="plan-pilot", cache_policy=NO_CACHE)
def plan_pilot(job: JobConfig, rows: int | None) -> JobConfig:
    """The job with the number of rows its pilot samples (checked against what is built)."""
    planned = pipeline.plan_pilot(job, get_settings(), rows)
    if planned.pilot_rows is None:
        get_run_logger().info("pilot: already built (attempt 1 keeps its sample)")
    else:
        get_run_logger().info("pilot: %d rows, sampled across the source", planned.pilot_rows)
    return planned


@task(
    name="project-cost", task_run_name="project-cost", cache_policy=NO_CACHE
)  # no retries: it reads staged files
def project_cost(job: JobConfig, enforce_budget: bool = True) -> PilotReport | None:
    """Project the whole job's cost from its pilot; stop before the main batches when the
    projection is above max_cost_usd (`enforce_budget`). Nothing to do without a pilot."""
    settings = get_settings()
    report = (pipeline.check_pilot if enforce_budget else pipeline.project)(job, settings)
    if report is not None:
        create_markdown_artifact(key=artifact_key(job, "pilot"), markdown=render_report(report))
        p = report.projected
        get_run_logger().info(
            "pilot of %d rows projects %s (%s – %s) for the whole job; static estimate %s",
            report.pilot.rows,
            format_usd(p.expected),
            format_usd(p.low),
            format_usd(p.high),
            format_usd(report.static.expected if report.static else None),
        )
    return report
