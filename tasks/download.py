"""Prefect task: download, verify and stage the results of ended batches."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from tasks.naming import step
from tasks.retrying import retry_unless_actionable
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(
    name="download",
    task_run_name=step("download"),
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    retry_condition_fn=retry_unless_actionable,  # not a refused key, nor results gone
)
def download(job: JobConfig, attempt: int, purpose: str | None = None) -> pipeline.Downloaded:
    """Stream each ended batch's results to disk, verify every custom_id came back once
    (those of every phase of the attempt: `purpose` names the task run)."""
    done = pipeline.download(job, get_settings(), attempt)
    for s in done.batches:
        get_run_logger().info("downloaded %s: %d results verified", s.batch_id, s.lines)
    for path in done.released:
        get_run_logger().warning("%s: its adopted batch was not its own; sending it again", path)
    return done
