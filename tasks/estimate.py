"""Prefect task: the job's cost (and its priming decision) before anything is built or sent."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.cost_model import CostEstimate
from halfrate.estimate import render_estimate
from halfrate.summary import format_usd
from tasks.reporting import artifact_key
from tasks.retrying import retry_unless_actionable
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(
    name="estimate-cost",
    task_run_name="estimate-cost",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_unless_actionable,  # not over budget, nor a refused key
)
def estimate(job: JobConfig) -> CostEstimate | None:
    """Count tokens and price the job; refuse to submit above the job's max_cost_usd."""
    cost = pipeline.estimate(job, get_settings())
    if cost is not None:
        create_markdown_artifact(
            key=artifact_key(job, "estimate"),
            markdown=render_estimate(job, cost),
            description=f"halfrate job {job.name}: its cost, estimated before anything is sent",
        )
        get_run_logger().info(
            "estimated batch cost %s (%s – %s; real-time %s)%s; priming batch %s",
            format_usd(cost.batch.expected),
            format_usd(cost.batch.low),
            format_usd(cost.batch.high),
            format_usd(cost.realtime.expected),
            "" if cost.profile.counted else ", ROUGH: count_tokens failed",
            cost.prime_reason,
        )
    return cost
