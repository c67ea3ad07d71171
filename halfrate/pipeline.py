"""One function per pipeline step, composed from the core modules.

The Prefect tasks in tasks/ are thin wrappers over these; the CLI and tests call them too.
Every step is idempotent and resumable: it reads the job's ledger and staged files to find
what is left to do, so rerunning a job after a crash at any point picks up where it stopped.

The steps live in modules by phase, re-exported here so callers say `pipeline.<step>`:
- `halfrate.steps_base`: `Step`, the job, its folder and ledger, and the settings;
- `halfrate.steps_prepare`: prepare, preflight, extract, estimate, build (and the phases);
- `halfrate.steps_pilot`: plan_pilot, project, check_pilot, record_estimates;
- `halfrate.steps_send`: submit, send_realtime, check, attempt_progress;
- `halfrate.steps_land`: download, load, load_staged;
- `halfrate.steps_job`: cancel, user_cancel, summarize, adopt, job_name_of.
"""

from halfrate.steps_base import Step
from halfrate.steps_job import (
    adopt,
    cancel,
    job_name_of,
    known_batch_ids,
    staged_summary,
    step_root,
    summarize,
    user_cancel,
)
from halfrate.steps_land import Downloaded, LoadResult, download, load, load_staged
from halfrate.steps_pilot import PILOT_FILE, check_pilot, plan_pilot, project, record_estimates
from halfrate.steps_prepare import (
    ESTIMATE_FILE,
    PHASES,
    build,
    estimate,
    extract,
    phases,
    preflight,
    prepare,
)
from halfrate.steps_send import (
    MAX_WAVES,
    attempt_progress,
    check,
    realtime_policy,
    register_batches,
    send_realtime,
    submit,
    submit_policy,
)

__all__ = [
    "ESTIMATE_FILE",
    "MAX_WAVES",
    "PHASES",
    "PILOT_FILE",
    "Downloaded",
    "LoadResult",
    "Step",
    "adopt",
    "attempt_progress",
    "build",
    "cancel",
    "check",
    "check_pilot",
    "download",
    "estimate",
    "extract",
    "job_name_of",
    "known_batch_ids",
    "load",
    "load_staged",
    "phases",
    "plan_pilot",
    "preflight",
    "prepare",
    "project",
    "realtime_policy",
    "record_estimates",
    "register_batches",
    "send_realtime",
    "staged_summary",
    "step_root",
    "submit",
    "submit_policy",
    "summarize",
    "user_cancel",
]
