"""What runs are called in the Prefect UI: the job and what the run does, never `submit-184`.

Flow runs: `licence-categories · label`, `trivia-answers · pilot`, `trivia-answers → trivia-judge
· chain`. Task runs: the step, then the phase and the attempt when there is one (`submit · prime`,
`submit · main · attempt 2`, `await-completion · main`, `build-requests · attempt 2`).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from halfrate.config import JobSpec, resolve_job

SEPARATOR = " · "


def job_run_name(job: str, kind: str) -> str:
    return f"{job}{SEPARATOR}{kind}"


def pilot_run_name(job: str) -> str:
    return f"{job}{SEPARATOR}pilot"


def chain_run_name(jobs: Sequence[str]) -> str:
    return f"{' → '.join(jobs)}{SEPARATOR}chain"


def step_name(step: str, parameters: Mapping[str, Any]) -> str:
    """A task run's name from its step and its call's `purpose` and `attempt` (shown from 2)."""
    parts = [step]
    purpose = parameters.get("purpose")
    if purpose:
        parts.append(str(purpose))
    attempt = parameters.get("attempt")
    if isinstance(attempt, int) and attempt > 1:
        parts.append(f"attempt {attempt}")
    return SEPARATOR.join(parts)


def job_identity(parameters: Mapping[str, Any]) -> tuple[str, str] | None:
    """The job name and kind a run's `job_file` and `job` parameters resolve to; None when
    they do not resolve (the run's first task then says why, naming the file or field)."""
    try:
        spec = parameters.get("job")
        if isinstance(spec, Mapping):
            spec = JobSpec.model_validate(dict(spec))
        job_file = parameters.get("job_file")
        job = resolve_job(Path(job_file) if job_file else None, spec)
    except (ValidationError, ValueError, OSError, TypeError, KeyError):
        return None
    return job.name, job.kind


def fallback_name(flow: str, parameters: Mapping[str, Any]) -> str:
    """The name of a run whose job does not resolve: the flow and the job file's name."""
    job_file = parameters.get("job_file")
    return f"{Path(str(job_file)).stem}{SEPARATOR}{flow}" if job_file else flow
