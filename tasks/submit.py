"""Prefect task: submit request files as batches, exactly once."""

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.ledger import BatchRecord
from halfrate.submit import SubmissionRetryLaterError
from tasks.naming import step
from tasks.reporting import emit_batch_event
from tasks.runtime import settings as get_settings  # env key, else the Secret block


def retry_if_unknown(task: Task[..., list[BatchRecord]], task_run: TaskRun, state: State) -> bool:
    """Another try is safe when the API was busy or a create's outcome is unknown (the retry
    starts by reconciling); never after a refusal, the spend limit or an ambiguity."""
    try:
        state.result()
    except SubmissionRetryLaterError:
        return True
    except Exception:
        return False  # refused (4xx, spend limit) or ambiguous: retrying cannot help
    return False


@task(
    name="submit",
    task_run_name=step("submit"),
    cache_policy=NO_CACHE,
    retries=4,
    retry_delay_seconds=[5, 30, 120, 600],
    retry_condition_fn=retry_if_unknown,
)
def submit(job: JobConfig, attempt: int, purpose: str) -> list[BatchRecord]:
    """Create one batch per request file that has none; reconcile any create of unknown outcome."""
    records = pipeline.submit(job, get_settings(), attempt, purpose)
    for record in records:
        if record.batch_id is None or record.realtime:
            continue  # waits for the processing queue, or goes out in real time
        get_run_logger().info(
            "%s batch %s: %d requests (%s)",
            purpose,
            record.batch_id,
            record.file.n_requests,
            record.file.path,
        )
        emit_batch_event("halfrate.batch.submitted", job, record)
    return records
