"""Prefect task: send in real time what the deadline left, or a `mode: realtime` job's files."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.realtime import RealtimeSent
from tasks.naming import step
from tasks.retrying import retry_unless_actionable
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(
    name="send-realtime",
    task_run_name=step("send-realtime"),
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_unless_actionable,  # not a refused key, nor the spend limit
)
def send_realtime(job: JobConfig, attempt: int, purpose: str) -> list[RealtimeSent]:
    """Send the due requests through the Messages API (each recorded before it is sent)."""
    sent = pipeline.send_realtime(job, get_settings(), attempt, purpose)
    for done in sent:
        get_run_logger().info(
            "%s in real time as %s: %s (%d calls, %d lost answers)",
            done.request_file,
            done.batch_id,
            done.counts,
            done.calls,
            done.lost_calls,
        )
    return sent
