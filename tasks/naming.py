"""The names and tags the Prefect UI shows for halfrate's runs (halfrate/naming.py decides them).

A flow's `flow_run_name` callable runs as the run starts, before its first task: it names the
run after its job and kind and tags it with the job's name, so the runs list, its filters and
automations find a job's runs (deployment runs and the CLI's alike). It never fails the run: a
job that does not resolve keeps a plain name, and its first task says what is wrong.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.context import FlowRunContext

from halfrate import naming

log = logging.getLogger(__name__)


def step(name: str) -> Callable[..., str]:
    """A `task_run_name` for the step `name`: `submit · main · attempt 2` from the call's
    `purpose` and `attempt` parameters (whichever it has)."""

    def task_run_name(parameters: dict[str, Any]) -> str:
        return naming.step_name(name, parameters)

    return task_run_name


def job_run() -> str:
    """`intents · label`, tagged `intents`."""
    parameters = _parameters()
    identity = naming.job_identity(parameters)
    if identity is None:
        return naming.fallback_name("batch-job", parameters)
    _tag([identity[0]])
    return naming.job_run_name(*identity)


def pilot_run() -> str:
    """`trivia-answers · pilot`, tagged `trivia-answers`."""
    parameters = _parameters()
    identity = naming.job_identity(parameters)
    if identity is None:
        return naming.fallback_name("pilot", parameters)
    _tag([identity[0]])
    return naming.pilot_run_name(identity[0])


def chain_run() -> str:
    """`trivia-answers → trivia-judge · chain`, tagged with each job's name."""
    jobs = []
    for job_file in _parameters().get("job_files") or []:
        identity = naming.job_identity({"job_file": job_file})
        jobs.append(identity[0] if identity else naming.fallback_name("?", {"job_file": job_file}))
    _tag(jobs)
    return naming.chain_run_name(jobs) if jobs else "job-chain"


def _parameters() -> Mapping[str, Any]:
    context = FlowRunContext.get()
    return context.parameters if context is not None else {}


def _tag(tags: Iterable[str]) -> None:
    """Add tags to the starting flow run (best effort: a name is no reason to fail a run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run, client = context.flow_run, context.client
    wanted = sorted(set(run.tags) | set(tags))
    if wanted == sorted(run.tags) or not isinstance(client, SyncPrefectClient):
        return  # halfrate's flows are sync: their engine holds a sync client
    try:
        client.update_flow_run(run.id, tags=wanted)
    except Exception as exc:
        log.warning("could not tag flow run %s with %s: %s", run.name, wanted, exc)
        return
    run.tags = wanted
