"""`halfrate pilot`: run a job's first attempt up to the end of its pilot phase, then project.

The pilot is part of the job (halfrate/pilot.py): its rows are sampled into attempt 1's pilot
files, sent after the priming batch and loaded like any batch. This flow stops there and
returns the report; `halfrate run` (the batch-job flow) later sends the main files only.
"""

import math
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.batch_job import SENDS_PER_PHASE, cancel_batches_hook
from halfrate import pipeline
from halfrate.config import NO_OVERRIDES, JobSpec
from halfrate.kinds.base import MAX_PILOT_ROWS
from halfrate.pilot_report import PilotReport
from tasks.await_completion import await_completion
from tasks.build_requests import build_requests
from tasks.download import download
from tasks.estimate import estimate
from tasks.extract import extract, prepare_job
from tasks.load import load
from tasks.pilot import plan_pilot, project_cost
from tasks.preflight import preflight
from tasks.realtime import send_realtime
from tasks.runtime import settings as get_settings  # env key, else the Secret block
from tasks.submit import submit


@flow(name="pilot-job", timeout_seconds=28 * 3600, on_cancellation=[cancel_batches_hook])
def pilot_job(
    job_file: str = "",
    job: JobSpec = NO_OVERRIDES,
    rows: Annotated[int, Field(ge=0, le=MAX_PILOT_ROWS)] = 0,
    restart: bool = False,
) -> PilotReport | None:
    """Send a sample of a job's rows as its pilot and project the whole job's cost from them.

    Args:
        job_file: A YAML job file, relative to the checkout (data/samples/trivia-answers.yaml),
            or empty when the job's keys are all given below.
        job: Keys that override the job file's; a field left empty keeps the file's value.
        rows: Rows the pilot samples; 0: the job's pilot_rows, else 40.
        restart: Start the job over first (first try of a run only).
    """
    settings = get_settings()
    poll = settings.poll_interval
    wait = await_completion.with_options(
        retries=math.ceil(settings.max_wait_hours * 3600 / poll), retry_delay_seconds=poll
    )
    send = submit.with_options(retry_delay_seconds=[poll, 5 * poll, 20 * poll, 60 * poll])
    fetch = download.with_options(retry_delay_seconds=[poll / 6, poll, 4 * poll])
    config = prepare_job(job_file, job, restart)
    preflight(config)
    extracted = extract(config)
    config = plan_pilot(config, rows or None)  # its pilot_rows set
    estimate.with_options(retry_delay_seconds=poll / 3)(config)  # the pilot's share: budget
    files = build_requests(config, 1)
    for purpose in pipeline.phases(files):
        if purpose == "main":
            break  # the pilot ends here: `halfrate run` sends the rest
        resent = 0  # the phase as flows/batch_job.py sends it (waves for the processing queue)
        for _ in range(pipeline.MAX_WAVES):
            send(config, 1, purpose)
            progress = wait(config, 1, purpose)
            if fetch(config, 1).released:
                resent += 1
            elif not progress.ready_to_send:
                break
            if resent >= SENDS_PER_PHASE:
                break
        send_realtime(config, 1, purpose)  # mode realtime, or what the deadline left
        load(config, extracted)
    return project_cost(config, enforce_budget=False)
