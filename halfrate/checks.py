"""Checks before a run starts anything (no Prefect, no API call, no job folder touched).

A job that cannot run should be refused in a second, with one message naming the file, key or
column and what to do: not after a Prefect server started and tasks failed. `check_job` reads
the job file and overrides, the source's header or schema only (never its rows), the price
table, the folders, and the job's earlier record if it has one. What it cannot know cheaply
(the source's content hash, the warehouse, the API's answer to the key) is checked again, in
full, by the run itself (extract, `halfrate.preflight`).
"""

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from halfrate.config import JobConfig, JobOverrides, resolve_job
from halfrate.errors import ActionableError
from halfrate.extract import check_columns, check_source_unchanged
from halfrate.pricing import base_model, price_list, price_table
from halfrate.settings import API_KEY_BLOCK_ENV, Settings
from halfrate.sources import ExtractError, source_columns
from halfrate.workspace import check_same_job, job_paths


class SetupError(ValueError, ActionableError):
    """A setting or folder that stops any job from running; the message says what to fix."""


class MissingKeyError(SetupError):
    """No API key is configured (and the run is not on the emulator)."""


@dataclass(frozen=True)
class CheckedJob:
    """A job that passed the checks, and what is worth a warning."""

    job: JobConfig
    warnings: list[str] = field(default_factory=list)


def check_job(
    job_file: str | None,
    spec: JobOverrides | None,
    settings: Settings,
    *,
    restart: bool,
    earlier: Sequence[str] = (),
) -> CheckedJob:
    """Refuse a job that cannot run, before anything starts (the CLI's check: `spec` holds
    its `--set` values, and an error in one names it so).

    `earlier` are the names of the jobs that run before this one in a chain (`halfrate run
    A.yaml B.yaml`): a job source (`source: job:<name>`) may name one of them.

    Raises:
        JobConfigError: The job file or an override is invalid (names the file and key).
        ExtractError: The source is missing, unreadable, empty, lacks a column the job names,
            changed since the job first read it, or names a job that neither ran nor runs
            earlier in the chain.
        SetupError: The job folder cannot be written.
        JobConflictError: The job name is taken by a job with other settings.
    """
    job = resolve_job(
        Path(job_file) if job_file else None,
        spec,
        overrides="--set values",
        override_key="--set {key}",
    )
    if job.upstream is None:
        columns, folder = source_columns(job.source)
        check_columns(job, columns, folder)
    else:  # its columns are known once the upstream ran: extract checks them, sending nothing
        check_upstream(job, job_file or job.name, settings, earlier)
    check_writable(settings.workdir, "HALFRATE_WORKDIR", settings.workdir)
    check_writable(settings.warehouse.parent, "HALFRATE_WAREHOUSE", settings.warehouse)
    paths = job_paths(settings.workdir, job.name)
    if not restart:
        check_same_job(paths, job)
        check_source_unchanged(job, paths)
    return CheckedJob(job, model_warnings(job.model))


def check_upstream(job: JobConfig, where: str, settings: Settings, earlier: Sequence[str]) -> None:
    """A job source names a job that runs earlier in the chain or has a folder in the workdir
    (whether it finished is checked when this job's extract reads its outputs)."""
    upstream = job.upstream
    if upstream is None or upstream in earlier:
        return
    if job_paths(settings.workdir, upstream).job_file.is_file():
        return
    if earlier:
        raise ExtractError(
            f"{where}: source job:{upstream} names no earlier job of this chain "
            f"({', '.join(earlier)}) and no job in {settings.workdir}; fix the name or put "
            "the job that makes it first"
        )
    raise ExtractError(
        f"{where}: source job:{upstream} names no job in {settings.workdir}; fix the name, or "
        f"run that job first (both in order: halfrate run UPSTREAM.yaml {where})"
    )


def model_warnings(model: str) -> list[str]:
    """A warning when the model is not in the price table (its costs will be unpriced)."""
    if price_list(model) or price_list(base_model(model)):
        return []
    known = sorted({p.model for p in price_table()})
    return [
        f"model {model!r} is not in halfrate/prices.csv, so its costs will show as unpriced "
        f"(and max_cost_usd cannot be checked); check its spelling. Known models: "
        + ", ".join(known)
    ]


def check_key(settings: Settings) -> None:
    """Refuse to start without an API key (or the name of a Secret block that holds one)."""
    key = settings.anthropic_api_key
    if key is not None and key.get_secret_value().strip():
        return
    if os.environ.get(API_KEY_BLOCK_ENV, "").strip():
        return  # the run reads it from the Prefect Secret block
    raise MissingKeyError("no ANTHROPIC_API_KEY is set")


def check_writable(folder: Path, env: str, value: Path) -> None:
    """The folder (or the nearest one that exists above it) accepts new files; `env=value` is
    the setting that names it, for the message."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            problem = f"{existing} is not writable ({exc.strerror or exc})"
    if problem:
        raise SetupError(f"{env}={value}: {problem}; fix it, or point {env} at a writable folder")
