"""Prefect task: the job's cost (and its priming decision) before anything is built or sent."""

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.cost_model import CostEstimate
from halfrate.estimate import BudgetExceededError, render_estimate
from halfrate.summary import format_usd
from tasks.reporting import artifact_key
from tasks.runtime import settings as get_settings  # env key, else the Secret block


def retry_unless_over_budget(task: Task[..., object], task_run: TaskRun, state: State) -> bool:
    """Counting again cannot bring an over-budget job under its cap; anything else may pass."""
    try:
        state.result()
    except BudgetExceededError:
        return False
    except Exception:
        return True
    return False


@task(
    name="estimate-cost",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_unless_over_budget,
)
def estimate(job: JobConfig) -> CostEstimate | None:
    """Count tokens and price the job; refuse to submit above the job's max_cost_usd."""
    cost = pipeline.estimate(job, get_settings())
    if cost is not None:
        create_markdown_artifact(
            key=artifact_key(job, "estimate"), markdown=render_estimate(job, cost)
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
