"""Prefect tasks: resolve the job, then extract and validate its rows."""

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from halfrate import pipeline
from halfrate.config import JobConfig, JobSpec
from halfrate.extract import ExtractSummary
from tasks.runtime import settings as get_settings  # env key, else the Secret block

# Steps never use Prefect's result cache: the job ledger and staged files are the one record of
# what is done, and every step reads them to resume (a second cache could only disagree).


@task(name="prepare-job", task_run_name="prepare-job", cache_policy=NO_CACHE)
def prepare_job(job_file: str | None, spec: JobSpec | None, restart: bool) -> JobConfig:
    """Resolve the job file and overrides, and open (or resume) the job's folder."""
    # A retried flow run resumes: `restart` only applies to a run's first try.
    first_try = (flow_run.get_run_count() or 1) <= 1
    job = pipeline.prepare(job_file, spec, restart and first_try, get_settings(), run=True)
    get_run_logger().info("job %s (%s, model %s)", job.name, job.kind, job.model)
    return job


@task(name="extract", task_run_name="extract", cache_policy=NO_CACHE)
def extract(job: JobConfig) -> ExtractSummary:
    """Read the source and quarantine rows that cannot be sent, with a reason each."""
    summary = pipeline.extract(job, get_settings())
    get_run_logger().info(
        "extract: %d rows valid, %d quarantined %s",
        summary.valid_rows,
        summary.quarantined_rows,
        summary.reasons or "",
    )
    return summary
