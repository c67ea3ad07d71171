"""The CLI commands. Each one is a thin shell over halfrate's core and the Prefect flow."""

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.markdown import Markdown
from rich.table import Table

from cli.output import (
    Canceled,
    ExitCode,
    console,
    errors_shown,
    fail,
    finish,
    finish_chain,
    note,
    plain,
    quiet_actionable_tracebacks,
)
from cli.progress import terminal_progress
from cli.start import api_endpoint, check_before_start
from halfrate.config import NO_OVERRIDES, JobSpec
from halfrate.settings import get_settings

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
DEMOS = {
    "label": (
        [SAMPLES / "intents.yaml"],
        "select label, count(*) as n, avg(correct::int) as accuracy from labels "
        "where job_name = 'intents-demo' group by label order by n desc",
    ),
    "extract": (
        [SAMPLES / "emails.yaml"],
        "select field, rows, round(accuracy, 3) as accuracy from extract_accuracy "
        "where job_name = 'emails-demo' order by field",
    ),
    "judge": (
        [SAMPLES / "trivia-answers.yaml", SAMPLES / "trivia-judge.yaml"],
        "select criterion, n, mean, min, max, distribution from judge_scores "
        "where job_name = 'trivia-judge'",
    ),
}
"""Demos by kind: the job files (several: a chain, in order) and a query to try on the results."""

JobFile = Annotated[Path, typer.Argument(help="YAML job file.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a job key: --set model=claude-haiku-4-5"),
]
OnEmulator = Annotated[
    bool,
    typer.Option(
        "--emulator",
        help="Run on the built-in emulator of the Batches API (no key, nothing paid): try "
        "halfrate on your own data offline. Outputs are stand-ins, not a model's.",
    ),
]
Debug = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks of errors (and Prefect's in full).")
]


def run(
    job_files: Annotated[
        list[Path], typer.Argument(help="YAML job file; several run as a chain, in order.")
    ],
    restart: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = False,
    set_: Overrides = None,
    emulator: OnEmulator = False,
    debug: Debug = False,
) -> None:
    """Run (or resume) a job: extract, build, submit, wait, download, load.

    Several job files run as one chain, in order (a later job may read an earlier one's
    outputs with `source: job:<name>`); every one is checked before the first sends anything,
    and rerunning the chain resumes it.

    Exit codes: 0 every row succeeded; 1 unexpected error; 2 bad job, source, setting or key
    (the message says what to fix); 3 some rows did not succeed; 4 results staged, not loaded;
    5 canceled by the user. A chain exits with its worst stage's code.
    """
    files = [str(f) for f in job_files]
    with errors_shown(debug):
        if len(files) > 1 and set_:
            raise fail("--set overrides one job: run the chain's jobs one by one to override")
        spec = parse_overrides(set_ or [])
        check_before_start("run", files, spec, restart=restart, emulator=emulator)
        with api_endpoint(emulator), terminal_progress():
            result = _run_jobs(files, spec, restart, debug)
    raise typer.Exit(_finish(result, len(files)))


def _run_jobs(files: list[str], spec: JobSpec | None, restart: bool, debug: bool) -> Any:
    if len(files) == 1:
        return run_flow(files[0], spec, restart, debug=debug)
    return run_chain(files, restart, debug=debug)


def _finish(result: Any, n_files: int) -> ExitCode:
    return finish_chain(result) if n_files > 1 else finish(result)


def estimate(
    job_file: JobFile,
    set_: Overrides = None,
    emulator: OnEmulator = False,
    debug: Debug = False,
) -> None:
    """Price a job before running it: extract and count tokens; nothing is submitted."""
    with errors_shown(debug):
        spec = parse_overrides(set_ or [])
        check_before_start("estimate", [str(job_file)], spec, restart=False, emulator=emulator)
        with api_endpoint(emulator) as ran_on, terminal_progress():
            job, cost = _estimate(str(job_file), spec)
    if cost is None:
        raise fail(f"job {job.name!r} has no rows to send (every row was quarantined)")
    from halfrate.estimate import render_estimate

    console.print(Markdown(render_estimate(job, cost)))
    if ran_on:
        note(
            "Counted on the built-in emulator (--emulator): its token counts approximate the "
            "real API's."
        )


def _estimate(job_file: str, spec: JobSpec | None) -> tuple[Any, Any]:
    from halfrate import pipeline

    settings = get_settings()
    job = pipeline.prepare(job_file, spec, False, settings)
    pipeline.extract(job, settings)
    return job, pipeline.estimate(job, settings, enforce_budget=False)


def demo(
    restart: Annotated[
        bool | None, typer.Option(help="Start over (default: yes on the emulator, no with a key).")
    ] = None,
    kind: Annotated[
        str, typer.Option(help=f"Which demo: {', '.join(DEMOS)} (a job of that kind).")
    ] = "label",
    debug: Debug = False,
) -> None:
    """Run a demo job on real sample data; on the built-in emulator unless ANTHROPIC_API_KEY
    is set. --kind label: label 693 utterances; --kind extract: a record per e-mail;
    --kind judge: answer 261 trivia questions, then judge the answers."""
    if kind not in DEMOS:
        raise fail(f"--kind {kind!r}: the demos are {', '.join(DEMOS)}")
    job_files, query = DEMOS[kind]
    files = [str(f) for f in job_files]
    on_emulator = not os.environ.get("ANTHROPIC_API_KEY")
    with errors_shown(debug):
        if not on_emulator:
            console.print("ANTHROPIC_API_KEY is set: running against the real API (batch prices).")
        with api_endpoint(on_emulator, "No ANTHROPIC_API_KEY: ") as ran_on, terminal_progress():
            start_over = restart if restart is not None else ran_on
            result = _run_jobs(files, None, start_over, debug)
    code = _finish(result, len(files))
    console.print("\nTry:")
    for example in ("select * from job_costs", query):
        note(f'  halfrate sql "{example}"', style="")
    raise typer.Exit(code)


def _prefect_env(debug: bool) -> None:
    """Signals end the CLI cleanly, and the run reports to the Prefect server ensure_server
    finds (PREFECT_API_URL, else halfrate's kept local server, started if need be), with the
    warnings of halfrate's core among the run's logs."""
    send_halfrate_logs_to_runs(os.environ)  # before Prefect reads its settings (its import)
    from cli.lifetime import handle_signals
    from cli.server import ServerError, ServerUnreachable, ensure_server

    handle_signals()
    quiet_actionable_tracebacks(debug)
    try:
        ensure_server(say=note)
    except ServerUnreachable as exc:
        raise fail(str(exc)) from None
    except ServerError as exc:
        raise fail(str(exc), code=ExitCode.error) from None


def send_halfrate_logs_to_runs(env: "os._Environ[str] | dict[str, str]") -> None:
    """Prefect sends the `halfrate` logger's records (warnings up: a lost create reconciled, a
    download redone, a warehouse busy) to the flow run's logs, as deployments do (prefect.yaml);
    one logged outside a run (before or after it) stays on stderr without a warning."""
    extra = [name.strip() for name in env.get(EXTRA_LOGGERS, "").split(",") if name.strip()]
    if "halfrate" not in extra:
        env[EXTRA_LOGGERS] = ",".join([*extra, "halfrate"])
    env.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")


EXTRA_LOGGERS = "PREFECT_LOGGING_EXTRA_LOGGERS"


def run_flow(job_file: str | None, spec: JobSpec | None, restart: bool, debug: bool = False) -> Any:
    """Run the Prefect flow in this process, reporting to the server `_prefect_env` finds."""
    _prefect_env(debug)
    from flows.batch_job import batch_job

    overrides = spec or NO_OVERRIDES
    return in_flow(lambda: batch_job(job_file=job_file or "", job=overrides, restart=restart))


def run_chain(job_files: list[str], restart: bool, debug: bool = False) -> Any:
    """Run jobs in order as one Prefect flow run (flows/chain.py), like run_flow."""
    _prefect_env(debug)
    from flows.chain import job_chain

    return in_flow(lambda: job_chain(job_files=job_files, restart=restart))


def in_flow(call: Callable[[], Any]) -> Any:
    """Call a flow; a user cancel becomes `Canceled`. Prefect's logs and events are sent before
    the CLI prints its last word, so no "Still processing items" line of theirs comes after it."""
    from prefect.events.worker import EventsWorker
    from prefect.exceptions import CancelledRun
    from prefect.logging.handlers import APILogWorker

    try:
        return call()
    except CancelledRun as exc:  # the user canceled the job while it ran
        raise Canceled(str(exc)) from None
    finally:
        for service in (EventsWorker, APILogWorker):
            service.drain_all(timeout=DRAIN_SECONDS, at_exit=False)


DRAIN_SECONDS = 15.0
"""The longest the CLI waits for Prefect's pending logs and events after a flow run."""


def parse_overrides(pairs: list[str]) -> JobSpec | None:
    if not pairs:
        return None
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise fail(f"--set {pair!r}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(value)
    try:
        return JobSpec.model_validate(values)
    except ValidationError as exc:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"--set: {bad}") from None


def status(
    job: Annotated[str | None, typer.Argument(help="Job name; all jobs if omitted.")] = None,
) -> None:
    """Show jobs, their batches and where each stands."""
    from halfrate.status import job_status_rows, list_jobs

    settings = get_settings()
    if job is None:
        table = Table(
            "job", "batches", "by status", "rows", title=plain(f"jobs in {settings.workdir}")
        )
        for job_row in list_jobs(settings.workdir):
            table.add_row(*map(plain, job_row))
        console.print(table)
        return
    try:
        rows = job_status_rows(settings.workdir, job)
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    from cli.status_view import print_job_status

    print_job_status(console, job, rows)


def cancel(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Cancel every unfinished batch of a job (stops further spend); a run waiting on it ends
    Cancelled and sends nothing more. `halfrate run` later resumes the canceled rows."""
    from halfrate import pipeline

    try:
        canceled = pipeline.cancel(job, get_settings())
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print(plain(f"canceled {len(canceled)} batch(es): {', '.join(canceled) or '-'}"))


def recover(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Rebuild a job's lost ledger (its folder was deleted) from the warehouse and the API."""
    from halfrate.recover import recover as recover_job

    try:
        done = recover_job(job, get_settings())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print(
        plain(
            f"recovered {done.job_name}: {len(done.attached)} batch(es) attached"
            + (
                f", {len(done.to_reconcile)} file(s) to reconcile with the batch list"
                if done.to_reconcile
                else ""
            )
            + "; rerun the job to continue"
        )
    )


def adopt(
    job: Annotated[str, typer.Argument(help="Job name.")],
    request_file: Annotated[str, typer.Argument(help="Request file, as the error names it.")],
    batch_id: Annotated[str, typer.Argument(help="The batch that holds that file's requests.")],
) -> None:
    """Say which batch holds a request file's requests (after an ambiguous lost create, a
    wrong adoption, or for a file with no record); checked against the file where possible."""
    from halfrate import pipeline

    try:
        record = pipeline.adopt(job, request_file, batch_id, get_settings())
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print(plain(f"{record.file.path} -> {record.batch_id}; rerun the job to continue"))


def load(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Load a job's staged (downloaded) batches into the warehouse."""
    from halfrate import pipeline

    try:
        with terminal_progress():
            result = pipeline.load_staged(job, get_settings())
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if result.deferred:
        raise fail(
            f"{result.message or 'warehouse busy'}; the batches stay staged: run `halfrate load "
            f"{job}` again when it is free",
            ExitCode.unfinished,
        )
    console.print(plain(f"loaded {len(result.loaded)} batch(es) into {get_settings().warehouse}"))


def version() -> None:
    """Print the halfrate version."""
    from halfrate import __version__

    typer.echo(__version__)
    sys.exit(0)


def export(
    job: Annotated[str, typer.Argument(help="Job name.")],
    format_: Annotated[str, typer.Option("--format", help="parquet, csv or jsonl.")] = "parquet",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output file, or a folder for JOB.FORMAT (default: data/exports/JOB.FORMAT)."
        ),
    ] = None,
) -> None:
    """Write a job's outputs, joined to its source rows' columns, to Parquet, CSV or JSON Lines."""
    from halfrate.export import ExportFormat, export_job
    from halfrate.warehouse import WarehouseBusyError

    try:
        fmt = ExportFormat(format_)
    except ValueError:
        raise fail(f"--format {format_!r}: use parquet, csv or jsonl") from None
    try:
        with terminal_progress():
            done = export_job(job, get_settings(), fmt, out)
    except (FileNotFoundError, ValueError, WarehouseBusyError) as exc:
        raise fail(str(exc)) from None
    columns = ", ".join(done.columns)
    console.print(plain(f"wrote {done.rows:,} rows of {job} to {done.path} (columns: {columns})"))
