"""Prefect task: the job's cost before anything is submitted."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.estimate import render_estimate
from halfrate.pricing import CostEstimate
from tasks.reporting import artifact_key
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="estimate-cost", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def estimate(job: JobConfig) -> CostEstimate | None:
    """Count tokens and price the job; refuse to submit above the job's max_cost_usd."""
    cost = pipeline.estimate(job, get_settings())
    if cost is not None:
        create_markdown_artifact(
            key=artifact_key(job, "estimate"), markdown=render_estimate(job, cost)
        )
        get_run_logger().info(
            "estimated batch cost $%s-$%s (real-time $%s-$%s)",
            cost.batch_cost_usd_low,
            cost.batch_cost_usd_high,
            cost.realtime_cost_usd_low,
            cost.realtime_cost_usd_high,
        )
    return cost
