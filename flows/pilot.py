"""`halfrate pilot`: run a job's first attempt up to the end of its pilot phase, then project.

The pilot is part of the job (halfrate/pilot.py): its rows are sampled into attempt 1's pilot
files, sent after the priming batch and loaded like any batch. This flow stops there and
returns the report; `halfrate run` (the batch-job flow) later sends the main files only.
"""

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.batch_job import SENDS_PER_PHASE, cancel_batches_hook, paced
from flows.steps import Steps
from halfrate import pipeline
from halfrate.config import NO_OVERRIDES, JobSpec
from halfrate.kinds.base import MAX_PILOT_ROWS
from halfrate.pilot_report import PilotReport
from tasks import naming
from tasks.build_requests import build_requests
from tasks.extract import extract, prepare_job
from tasks.load import load
from tasks.pilot import plan_pilot, project_cost
from tasks.preflight import preflight
from tasks.realtime import send_realtime
from tasks.runtime import settings as get_settings  # env key, else the Secret block


@flow(
    name="pilot-job",
    flow_run_name=naming.pilot_run,  # `trivia-answers · pilot`, tagged `trivia-answers`
    timeout_seconds=28 * 3600,
    on_cancellation=[cancel_batches_hook],
)
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
    wait, send, fetch, price = paced(get_settings())
    run = Steps()
    config = run(prepare_job, job_file, job, restart)
    run(preflight, config)
    extracted = run(extract, config)
    config = run(plan_pilot, config, rows or None)  # its pilot_rows set
    run(price, config)  # the pilot's share: budget
    files = run(build_requests, config, 1)
    phases = [p for p in pipeline.phases(files) if p != "main"]  # `halfrate run` sends the rest
    for purpose in phases:
        resent = 0  # the phase as flows/batch_job.py sends it (waves for the processing queue)
        for _ in range(pipeline.MAX_WAVES):
            run(send, config, 1, purpose)
            progress = run(wait, config, 1, purpose, phases)  # progress: of the pilot's requests
            if run(fetch, config, 1, purpose).released:
                resent += 1
            elif not progress.ready_to_send:
                break
            if resent >= SENDS_PER_PHASE:
                break
        run(send_realtime, config, 1, purpose)  # mode realtime, or what the deadline left
        run(load, config, extracted, 1, purpose)
    return run(project_cost, config, enforce_budget=False)
