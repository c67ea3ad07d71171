"""Prefect task: the sensor that waits for an attempt's batches to end."""

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from halfrate import pipeline
from halfrate.config import JobConfig
from halfrate.errors import APIError
from halfrate.progress import BatchesNotReady, Progress
from tasks.reporting import report_progress
from tasks.runtime import settings as get_settings  # env key, else the Secret block


def retry_while_waiting(task: Task[..., Progress], task_run: TaskRun, state: State) -> bool:
    """Retry only while batches are still running (or the API blipped); fail fast otherwise."""
    try:
        state.result()
    except BatchesNotReady:
        return True  # still running
    except APIError as exc:
        return exc.transient  # a passing fault; not the spend limit, a refused key, ...
    except Exception:
        return False
    return False


# Pattern A of shared/reference/prefect.md section 11: one task that Prefect retries every poll
# interval. It keeps the whole job in one flow run and one UI graph; submit is recorded in the
# job ledger, so a crashed or restarted run resumes the wait without paying twice. The flow
# sets `retries` and `retry_delay_seconds` from HALFRATE_POLL_INTERVAL at run time.
@task(
    name="await-completion",
    retries=2880,
    retry_delay_seconds=30,
    retry_condition_fn=retry_while_waiting,
    cache_policy=NO_CACHE,
    timeout_seconds=600,  # bounds one status check, not the wait
)
def await_completion(job: JobConfig, attempt: int, purpose: str | None = None) -> Progress:
    """Check the attempt's batches once (past the deadline, cancel those not ended); raise
    BatchesNotReady (and retry) until all ended, or files waiting for the queue may go."""
    progress = pipeline.check(job, get_settings(), attempt, purpose)
    if report_progress(job, attempt, progress):  # news (else Prefect's retry line says it)
        get_run_logger().info("attempt %d: %s", attempt, progress.summary())
    if not progress.settled:
        raise BatchesNotReady(progress)
    return progress
