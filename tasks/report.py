"""Prefect task: read the job's outcome back from the warehouse and publish it."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.summary import ChainSummary, JobSummary, format_usd
from tasks.reporting import emit_job_event, publish_chain_summary, publish_summary
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="report", task_run_name="report", cache_policy=NO_CACHE)
def report(job: JobConfig) -> JobSummary:
    """Summarize outcomes, cost and savings as artifacts, and emit `halfrate.job.completed`."""
    summary = pipeline.summarize(job, get_settings())
    publish_summary(job, summary)
    emit_job_event(
        "halfrate.job.completed",
        job.name,
        {
            "rows": summary.rows,
            "final_states": summary.final_states,
            "batch_cost_usd": summary.batch_cost_usd,
            "savings_usd": summary.savings_usd,
            "realtime_rows": summary.realtime_rows,  # rows that missed the batch (deadline)
            "realtime_spend_usd": summary.realtime_spend_usd,
            "cost_usd": summary.cost_usd,
            "batch_cost": format_usd(summary.batch_cost_usd),  # for people (the UI's feed)
            "savings": format_usd(summary.savings_usd),
            "cost": format_usd(summary.cost_usd),
            "warehouse": summary.warehouse,
        },
    )
    get_run_logger().info("job %s: %s", job.name, summary.final_states)
    return summary


@task(name="check-cancel", task_run_name="check-cancel", cache_policy=NO_CACHE)
def user_cancel(job: JobConfig) -> str | None:
    """Whether the user canceled the job while it ran (the flow then ends Cancelled)."""
    return pipeline.user_cancel(job, get_settings())


@task(name="report-chain", task_run_name="report-chain", cache_policy=NO_CACHE)
def report_chain(stages: list[JobSummary]) -> ChainSummary:
    """The chain's cost per stage and in total, as an artifact."""
    chain = ChainSummary.of(stages)
    publish_chain_summary(chain)
    get_run_logger().info(
        "chain %s: %s at batch prices",
        " -> ".join(s.job_name for s in stages),
        format_usd(chain.batch_cost_usd),
    )
    return chain
