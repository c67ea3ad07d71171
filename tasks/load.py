"""Prefect task: load staged results into the DuckDB warehouse."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.extract import ExtractSummary
from tasks.naming import step
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="load", task_run_name=step("load"), cache_policy=NO_CACHE)
def load(
    job: JobConfig, extracted: ExtractSummary, attempt: int, purpose: str | None = None
) -> pipeline.LoadResult:
    """Upsert downloaded batches into DuckDB; a busy warehouse leaves them staged, not lost.
    Says whether `attempt` leaves rows for another one (`purpose` names the task run)."""
    result = pipeline.load(job, get_settings(), extracted, attempt)
    logger = get_run_logger()
    if result.deferred:
        logger.warning(
            "warehouse busy, %d batches stay staged: %s", len(result.deferred), result.message
        )
    logger.info("loaded %d batches into %s", len(result.loaded), get_settings().warehouse)
    return result
