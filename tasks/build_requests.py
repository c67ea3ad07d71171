"""Prefect task: build the request files of one attempt."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.ledger import RequestFile
from tasks.naming import step
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="build-requests", task_run_name=step("build-requests"), cache_policy=NO_CACHE)
def build_requests(job: JobConfig, attempt: int) -> list[RequestFile]:
    """Write the JSONL request files for one attempt (all rows, or the rows to retry)."""
    files = pipeline.build(job, get_settings(), attempt)
    get_run_logger().info(
        "attempt %d: %d requests in %d files (%.1f MB)",
        attempt,
        sum(f.n_requests for f in files),
        len(files),
        sum(f.body_bytes for f in files) / 1e6,
    )
    return files
