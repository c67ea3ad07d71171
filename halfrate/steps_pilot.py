"""The pilot's steps: size it, project the whole job from it, check that against the budget."""

import logging
from typing import TYPE_CHECKING

from halfrate import pilot
from halfrate.config import JobConfig
from halfrate.job_estimates import sync_estimate_files
from halfrate.kinds.base import SendMode
from halfrate.pilot_report import PilotReport, load_report, measure, save_report
from halfrate.settings import Settings
from halfrate.steps_base import Step
from halfrate.steps_prepare import ESTIMATE_FILE
from halfrate.warehouse import connect, ensure_schema

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

log = logging.getLogger("halfrate.pipeline")  # a part of the pipeline, and logs as the pipeline

PILOT_FILE = "pilot.json"


def plan_pilot(job: JobConfig, settings: Settings, rows: int | None) -> JobConfig:
    """The job with its pilot's size set (`halfrate pilot --rows`), checked against what
    attempt 1 already holds."""
    return pilot.plan(job, Step.of(job, settings).ledger, rows)


def project(job: JobConfig, settings: Settings) -> PilotReport | None:
    """The pilot's report and projection of the whole job (None: attempt 1 has no pilot).

    Made once the pilot's batches are downloaded and kept as pilot.json (the projection the
    budget is checked against), then recorded in the warehouse's job_estimates.
    """
    step = Step.of(job, settings)
    if not pilot.has_pilot(step.ledger):
        return None
    path = step.paths.root / PILOT_FILE
    report = load_report(path)
    if report is None:
        report = measure(job, step.paths, step.ledger, step.paths.root / ESTIMATE_FILE)
        save_report(path, report)
        record_estimates(step)
    return report


def check_pilot(job: JobConfig, settings: Settings) -> PilotReport | None:
    """Before attempt 1's main batches: project the job from its pilot and stop (raise
    PilotBudgetError) when the projection is above max_cost_usd. Once a main batch was sent
    the budget is no longer checked (the spend it guards against has begun)."""
    report = project(job, settings)
    main = Step.of(job, settings).ledger.records(attempt=1, purpose="main")
    if report is not None and not any(r.batch_id or r.status for r in main):
        pilot.check_projection(job, report)
    return report


def record_estimates(step: "Step", con: "DuckDBPyConnection | None" = None) -> None:
    """Sync the job's static estimate and pilot projection into job_estimates (best effort
    without `con`: a busy warehouse gets them at the next load)."""
    files = (step.paths.root / ESTIMATE_FILE, step.paths.root / PILOT_FILE)
    realtime = step.job.mode is SendMode.realtime
    if con is not None:
        sync_estimate_files(con, step.job.name, *files, realtime)
        return
    try:
        with connect(step.settings.warehouse, retry_seconds=10.0) as own:
            ensure_schema(own)
            sync_estimate_files(own, step.job.name, *files, realtime)
    except Exception as exc:  # the files keep them; the next load records them
        log.warning("could not record the estimates in %s now: %s", step.settings.warehouse, exc)
