"""Prefect task: submit request files as batches, exactly once."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.ledger import BatchRecord
from tasks.reporting import emit_batch_event
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@task(name="submit", cache_policy=NO_CACHE)
def submit(job: JobConfig, attempt: int, purpose: str) -> list[BatchRecord]:
    """Create one batch per request file that has none; reconcile any create of unknown outcome."""
    records = pipeline.submit(job, get_settings(), attempt, purpose)
    for record in records:
        get_run_logger().info(
            "%s batch %s: %d requests (%s)",
            purpose,
            record.batch_id,
            record.file.n_requests,
            record.file.path,
        )
        emit_batch_event("halfrate.batch.submitted", job, record)
    return records
