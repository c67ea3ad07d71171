"""Prefect task: download, verify and stage the results of ended batches."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.download import DownloadSummary
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="download", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[5, 30, 120])
def download(job: JobConfig, attempt: int) -> list[DownloadSummary]:
    """Stream each ended batch's results to disk, verify every custom_id came back once."""
    summaries = pipeline.download(job, get_settings(), attempt)
    for s in summaries:
        get_run_logger().info("downloaded %s: %d results verified", s.batch_id, s.lines)
    return summaries
