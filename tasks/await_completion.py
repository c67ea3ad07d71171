"""Prefect task: the sensor that waits for an attempt's batches to end.

Pattern A of shared/reference/prefect.md section 11: one task that Prefect retries once per
poll. It keeps the whole job in one flow run and one UI graph; submit is recorded in the job
ledger, so a crashed or restarted run resumes the wait without paying twice. The flow sets
`retries` and `retry_delay_seconds` from halfrate.waiting.PollSchedule: HALFRATE_POLL_INTERVAL
doubling up to HALFRATE_MAX_POLL_INTERVAL (30 s, 1, 2, 4, 8 min, then every 15 min).

Waiting reads as waiting. Prefect's task engine logs every retry it grants as "Task run failed
with exception: BatchesNotReady(...) - Retry 103/93600 will start 30 second(s) from now" (INFO,
`handle_retry`), although the run is healthy and its state is AwaitingRetry, not Failed. So
this module, imported by every process that runs the flow, puts a filter on Prefect's task-run
logger that demotes that one line to DEBUG when the exception is our KeepWaiting (still running,
or a passing API fault): it is gone from the run's logs unless PREFECT_LOGGING_LEVEL=DEBUG;
every other retry line and every failure (retries exhausted included) is left as it is. The
task logs one line per poll of its own instead: what it waits for, when it checks next, when
the batches expire; a passing API fault as a warning. The alternatives were worse: returning a
Failed state is logged as "failed with state"; a sleep loop inside one try loses the retry per
poll (a crash restarts the loop, and the retry count no longer bounds the wait).
"""

import logging

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import task_run

from halfrate import pipeline, waiting
from halfrate.config import JobConfig
from halfrate.errors import APIError
from halfrate.progress import BatchesNotReady, CheckFailed, KeepWaiting, Progress
from tasks.naming import step
from tasks.reporting import report_progress
from tasks.runtime import settings as get_settings  # env key, else the Secret block


class QuietWaiting(logging.Filter):
    """Demote Prefect's "Task run failed with exception: ... - Retry n/m" line to DEBUG when
    the exception is a KeepWaiting: a wait, not a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno != logging.INFO or not any(isinstance(a, KeepWaiting) for a in args):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


TASK_RUN_LOGGER = "prefect.task_runs"
if not any(isinstance(f, QuietWaiting) for f in logging.getLogger(TASK_RUN_LOGGER).filters):
    logging.getLogger(TASK_RUN_LOGGER).addFilter(QuietWaiting())


DEFAULT_SCHEDULE = waiting.PollSchedule.backoff(30, 900, 26 * 3600)  # the flow sets the real one


def retry_while_waiting(task: Task[..., Progress], task_run: TaskRun, state: State) -> bool:
    """Retry only while the wait goes on (batches running, or a passing API fault)."""
    try:
        state.result()
    except KeepWaiting:
        return True
    except Exception:
        return False  # a batch missing or overdue, a refused key: a person must look
    return False


@task(
    name="await-completion",
    task_run_name=step("await-completion"),
    retries=DEFAULT_SCHEDULE.retries,
    retry_delay_seconds=list(DEFAULT_SCHEDULE.delays),
    retry_condition_fn=retry_while_waiting,
    cache_policy=NO_CACHE,
    timeout_seconds=1500,  # bounds one poll: a status check, or a nap to the deadline and one
)
def await_completion(
    job: JobConfig, attempt: int, purpose: str, phases: list[str] | None = None
) -> Progress:
    """Check the attempt's `purpose` batches once (past the deadline, cancel those not ended);
    raise BatchesNotReady (and be retried) until all ended or files waiting for the queue may
    go. The progress artifact counts the requests of `phases` (default: the whole attempt)."""
    settings = get_settings()
    next_in = waiting.PollSchedule.of(settings).delay_after(task_run.get_run_count())
    logger = get_run_logger()
    try:
        progress = waiting.poll(lambda: pipeline.check(job, settings, attempt, purpose), next_in)
    except APIError as exc:
        if not exc.transient:
            raise
        logger.warning(waiting.check_failed_line(purpose, exc, next_in))
        raise CheckFailed(str(exc)) from None
    report_progress(job, pipeline.attempt_progress(job, settings, attempt, purpose, phases))
    if progress.settled:
        logger.info(waiting.settled_line(purpose, progress, waiting.utcnow()))
        return progress
    logger.info(waiting.waiting_line(purpose, progress, next_in, waiting.utcnow()))
    raise BatchesNotReady(progress)
