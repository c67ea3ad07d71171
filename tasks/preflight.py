"""Prefect task: the checks before any paid call (warehouse, job folder, key, lost ledger)."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(
    name="preflight", task_run_name="preflight", cache_policy=NO_CACHE
)  # no retries: what it finds needs a person
def preflight(job: JobConfig) -> None:
    """Refuse to start a job that would fail after paying (or pay twice): nothing is sent."""
    pipeline.preflight(job, get_settings())
    get_run_logger().info("preflight: warehouse, job folder and API key are usable")
