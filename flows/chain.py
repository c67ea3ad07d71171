"""A chain of jobs as one flow run: each job a batch-job subflow, in order.

A later job may read an earlier one's outputs (`source: job:<name>`), e.g. trivia answers
generated, then judged. A stage that fails stops the chain; running the chain again resumes
it: finished stages are cheap no-ops (each job resumes from its ledger and sends nothing
more), and the first unfinished one picks up where it stopped.
"""

from typing import Any

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.runtime import flow_run
from prefect.states import Cancelled

from flows.batch_job import batch_job
from halfrate import pipeline
from halfrate.summary import ChainSummary, JobSummary
from tasks import naming
from tasks.report import report_chain
from tasks.runtime import settings as get_settings  # env key, else the Secret block


def cancel_chain_hook(flow: Flow[..., object], run: FlowRun, state: State) -> None:
    """Cancelling the chain cancels the batches of its stages that have not ended."""
    for job_file in run.parameters.get("job_files") or []:
        name = pipeline.job_name_of({"job_file": job_file}, get_settings())
        if name is not None:
            try:
                pipeline.cancel(name, get_settings())
            except (FileNotFoundError, RuntimeError):
                continue  # a stage that never started has nothing to cancel


@flow(
    name="job-chain",
    flow_run_name=naming.chain_run,  # `trivia-answers → trivia-judge · chain`, tagged with both
    on_cancellation=[cancel_chain_hook],
)
def job_chain(job_files: list[str], restart: bool = False) -> ChainSummary | State[Any]:
    """Run jobs in order, each as a batch-job subflow; print each stage's cost and the total.

    Args:
        job_files: YAML job files, in order (data/samples/trivia-answers.yaml, then
            data/samples/trivia-judge.yaml reading its outputs).
        restart: Start every job over (first try of a run only; a retry resumes).
    """
    first_try = (flow_run.get_run_count() or 1) <= 1
    stages: list[JobSummary] = []
    for job_file in job_files:
        state = batch_job(job_file=job_file, restart=restart and first_try, return_state=True)
        if state.is_cancelled():  # the user canceled the stage: so is the chain
            return Cancelled(message=state.message)
        stages.append(state.result())  # a failed stage raises: the chain fails with it
    return report_chain(stages)
