"""The halfrate pipeline: extract, build-requests, submit, await-completion, download,
send-realtime (a deadline's rest, or mode realtime), load."""

from typing import Any, NamedTuple

from prefect import Flow, Task, flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.states import Cancelled, Completed

from flows.steps import Steps
from halfrate import pipeline
from halfrate.config import NO_OVERRIDES, JobSpec
from halfrate.settings import Settings
from halfrate.summary import JobSummary
from halfrate.waiting import PollSchedule
from tasks import naming
from tasks.await_completion import await_completion
from tasks.build_requests import build_requests
from tasks.download import download
from tasks.estimate import estimate
from tasks.extract import extract, prepare_job
from tasks.load import load
from tasks.pilot import project_cost
from tasks.preflight import preflight
from tasks.realtime import send_realtime
from tasks.report import report, user_cancel
from tasks.reporting import emit_job_event
from tasks.runtime import settings as get_settings  # env key, else the Secret block
from tasks.submit import submit

SENDS_PER_PHASE = 3  # an adoption its results prove wrong sends the file again


def cancel_batches_hook(flow: Flow[..., object], flow_run: FlowRun, state: State) -> None:
    """Cancelling the run (UI, CLI) cancels its batches so they stop billing, as the user's
    cancel: the ledger records it, and a later run resumes the canceled rows."""
    job = pipeline.job_name_of(flow_run.parameters, get_settings())
    if job is not None:
        pipeline.cancel(job, get_settings())


def failed_hook(flow: Flow[..., object], flow_run: FlowRun, state: State) -> None:
    job = pipeline.job_name_of(flow_run.parameters, get_settings())
    emit_job_event("halfrate.job.failed", job or "unknown", {"message": state.message or ""})


@flow(
    name="batch-job",
    flow_run_name=naming.job_run,  # `intents · label`, and the run tagged `intents`
    timeout_seconds=28 * 3600,
    on_cancellation=[cancel_batches_hook],
    on_failure=[failed_hook],
)
def batch_job(
    job_file: str = "", job: JobSpec = NO_OVERRIDES, restart: bool = False
) -> JobSummary | State[Any]:
    """Run one bulk Claude job at batch prices and land every row in DuckDB.

    Args:
        job_file: A YAML job file, relative to the checkout (data/samples/intents.yaml), or
            empty when the job's keys are all given below.
        job: Keys that override the job file's; a field left empty keeps the file's value.
        restart: Start the job over instead of resuming it (first try of a run only).
    """
    wait, send, fetch, price = paced(get_settings())
    run = Steps()  # each step waits for the one before: the run graph is the pipeline
    config = run(prepare_job, job_file, job, restart)
    run(preflight, config)
    extracted = run(extract, config)
    for attempt in range(1, config.max_attempts + 1):
        if attempt == 1:  # before building: it decides whether a priming batch pays
            run(price, config)
        files = run(build_requests, config, attempt)
        if not files:
            break  # nothing (left) to send, or the user canceled: no further attempt
        phases = pipeline.phases(files)
        for purpose in phases:
            if purpose == "main" and "pilot" in phases:
                run(project_cost, config)  # stops here when the pilot projects over budget
            resent = 0
            for _ in range(pipeline.MAX_WAVES):  # waves: files wait for the processing queue
                run(send, config, attempt, purpose)
                progress = run(wait, config, attempt, purpose)
                if run(fetch, config, attempt, purpose).released:
                    resent += 1
                elif not progress.ready_to_send:
                    break
                if resent >= SENDS_PER_PHASE:
                    break
            run(send_realtime, config, attempt, purpose)  # mode realtime, or a deadline's rest
            loaded = run(load, config, extracted, attempt, purpose)
        if not loaded.more_to_send:
            break  # every row settled: no empty next attempt
    summary = run(report, config)
    canceled = run(user_cancel, config)
    if canceled:
        return Cancelled(message=canceled)
    # Completed either way; the message says when rows did not succeed (the CLI's exit code too)
    return Completed(message=summary.outcome, data=summary)


class Paced(NamedTuple):
    """The tasks whose retries are paced from the poll interval."""

    wait: Task[..., Any]
    send: Task[..., Any]
    fetch: Task[..., Any]
    price: Task[..., Any]


def paced(settings: Settings) -> Paced:
    """await-completion backs off from the poll interval (halfrate.waiting.PollSchedule); a
    create of unknown outcome, a broken download and a failed count are retried at its pace."""
    poll = settings.poll_interval
    schedule = PollSchedule.of(settings)
    return Paced(
        wait=await_completion.with_options(
            retries=schedule.retries,
            retry_delay_seconds=list(schedule.delays),
            timeout_seconds=schedule.longest + 600,  # a poll may nap until the deadline
        ),
        # Retries of a create of unknown outcome reconcile first; pace them like the polling.
        send=submit.with_options(retry_delay_seconds=[poll, 5 * poll, 20 * poll, 60 * poll]),
        fetch=download.with_options(retry_delay_seconds=[poll / 6, poll, 4 * poll]),
        price=estimate.with_options(retry_delay_seconds=poll / 3),
    )
