"""The CLI commands. Each one is a thin shell over halfrate's core and the Prefect flow."""

import atexit
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from halfrate.config import JobConfigError, JobSpec, resolve_job
from halfrate.settings import get_settings

console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths in errors stay copy-pasteable

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
DEMOS = {
    "label": (
        [SAMPLES / "intents.yaml"],
        "Label 693 real utterances",
        "select label, count(*) as n, avg(correct::int) as accuracy from labels "
        "where job_name = 'intents-demo' group by label order by n desc",
    ),
    "extract": (
        [SAMPLES / "emails.yaml"],
        "Extract a typed record from each of 281 real e-mails",
        "select field, rows, round(accuracy, 3) as accuracy from extract_accuracy "
        "where job_name = 'emails-demo' order by field",
    ),
    "judge": (
        [SAMPLES / "trivia-answers.yaml", SAMPLES / "trivia-judge.yaml"],
        "Answer 261 trivia questions, then judge the answers (a chain of two jobs)",
        "select criterion, n, mean, min, max, distribution from judge_scores "
        "where job_name = 'trivia-judge'",
    ),
}
"""Demos by kind: the job file (several: a chain, in order), what it does, and a query to
try on its results."""


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def run(
    job_files: Annotated[
        list[Path], typer.Argument(help="YAML job file; several run as a chain, in order.")
    ],
    restart: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a job key: --set model=claude-haiku-4-5"),
    ] = None,
) -> None:
    """Run (or resume) a job: extract, build, submit, wait, download, load.

    Several job files run as one chain, in order (a later job may read an earlier one's
    outputs with `source: job:<name>`); rerunning the chain resumes it.
    """
    if len(job_files) > 1:
        if set_:
            raise fail("--set overrides one job: run the chain's jobs one by one to override")
        print_chain_summary(run_chain([str(f) for f in job_files], restart))
        return
    spec = parse_overrides(set_ or [])
    summary = run_flow(str(job_files[0]), spec, restart)
    print_summary(summary)


def estimate(
    job_file: Annotated[Path, typer.Argument(help="YAML job file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a job key: --set model=claude-haiku-4-5"),
    ] = None,
) -> None:
    """Price a job before running it: extract and count tokens; nothing is submitted."""
    from halfrate import pipeline
    from halfrate.estimate import render_estimate

    settings = get_settings()
    try:
        job = pipeline.prepare(str(job_file), parse_overrides(set_ or []), False, settings)
        pipeline.extract(job, settings)
        cost = pipeline.estimate(job, settings, enforce_budget=False)
    except (JobConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if cost is None:
        raise fail(f"job {job.name!r} has no rows to send")
    console.print(Markdown(render_estimate(job, cost)))


def demo(
    restart: Annotated[
        bool | None, typer.Option(help="Start over (default: yes on the emulator, no with a key).")
    ] = None,
    kind: Annotated[
        str, typer.Option(help=f"Which demo: {', '.join(DEMOS)} (a job of that kind).")
    ] = "label",
) -> None:
    """Run a demo job on real sample data; on the built-in emulator unless ANTHROPIC_API_KEY
    is set. --kind label: label 693 utterances; --kind extract: a record per e-mail;
    --kind judge: answer 261 trivia questions, then judge the answers."""
    if kind not in DEMOS:
        raise fail(f"--kind {kind!r}: the demos are {', '.join(DEMOS)}")
    job_files, _, query = DEMOS[kind]
    files = [str(f) for f in job_files]
    if os.environ.get("ANTHROPIC_API_KEY"):
        console.print("ANTHROPIC_API_KEY is set: running against the real API (batch prices).")
        result = _run_demo(files, bool(restart))
    else:
        result = _demo_on_emulator(files, restart is not False)
    if len(files) > 1:
        print_chain_summary(result)
    else:
        print_summary(result)
    console.print("\nTry:")
    for example in ("select * from job_costs", query):
        console.print(f'  halfrate sql "{example}"', highlight=False)


def _run_demo(files: list[str], restart: bool) -> Any:
    return run_flow(files[0], None, restart) if len(files) == 1 else run_chain(files, restart)


def _demo_on_emulator(files: list[str], restart: bool) -> Any:
    from halfrate_emulator import EmulatorOptions, EmulatorServer

    settings = get_settings()
    data_dir = settings.workdir.parent / "emulator"
    options = EmulatorOptions(processing_seconds=2.0)
    with EmulatorServer(data_dir=data_dir, port=0, options=options) as server:
        console.print(
            f"No ANTHROPIC_API_KEY: using the built-in emulator at {server.base_url} "
            "(a deterministic stand-in, not a model: labels and scores are word-overlap "
            "guesses, records are schema-valid placeholders, answers echo the question)."
        )
        os.environ["ANTHROPIC_BASE_URL"] = server.base_url
        os.environ["ANTHROPIC_API_KEY"] = "emulator-key"  # accepted by the emulator only
        os.environ.setdefault("HALFRATE_POLL_INTERVAL", "1")
        get_settings.cache_clear()
        try:
            return _run_demo(files, restart)
        finally:
            for key in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
                os.environ.pop(key, None)
            get_settings.cache_clear()


def _quiet_teardown() -> None:
    """Mute stderr once every exit handler has run (registered first, so it runs last).

    With Prefect's background threads alive at exit, DuckDB's extension module outlives the
    interpreter's teardown and nanobind prints dozens of "leaked instance" lines about DuckDB's
    own module-level type objects. They are not leaks of ours and nothing can act on them.
    """
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    atexit.register(_quiet_teardown)  # before prefect registers its own handlers


def check_chain(job_files: list[str]) -> None:
    """Every stage's job file is valid, and a job source names an earlier stage or a job
    that exists, before the first stage sends anything."""
    workdir = get_settings().workdir
    names: list[str] = []
    for job_file in job_files:
        try:
            job = resolve_job(Path(job_file))
        except JobConfigError as exc:
            raise fail(str(exc)) from None
        upstream = job.upstream
        if upstream and upstream not in names and not (workdir / upstream / "job.json").is_file():
            raise fail(
                f"{job_file}: source job:{upstream} names no earlier job of this chain "
                f"({', '.join(names) or 'none'}) and no job in {workdir}; fix the name or "
                "put the job that makes it first"
            )
        names.append(job.name)


def run_flow(job_file: str | None, spec: JobSpec | None, restart: bool) -> Any:
    """Run the Prefect flow in this process (a temporary Prefect server unless one is set)."""
    _prefect_env()
    from prefect.exceptions import CancelledRun

    from flows.batch_job import batch_job

    try:
        return batch_job(job_file=job_file, job=spec, restart=restart)
    except CancelledRun as exc:  # the user canceled the job while it ran
        err.print(f"[bold yellow]canceled:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (JobConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None


def run_chain(job_files: list[str], restart: bool) -> Any:
    """Run jobs in order as one Prefect flow run (flows/chain.py), like run_flow."""
    check_chain(job_files)
    _prefect_env()
    from prefect.exceptions import CancelledRun

    from flows.chain import job_chain

    try:
        return job_chain(job_files=job_files, restart=restart)
    except CancelledRun as exc:
        err.print(f"[bold yellow]canceled:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (JobConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None


def print_chain_summary(chain: Any) -> None:
    from halfrate.summary import ChainSummary, format_usd

    c: ChainSummary = chain
    for stage in c.stages:
        print_summary(stage)
    table = Table("stage", "kind", "rows", "cost (batch)", "real-time", "saved", title="chain")
    for s in c.stages:
        table.add_row(
            s.job_name,
            s.kind,
            f"{s.rows:,}",
            format_usd(s.batch_cost_usd),
            format_usd(s.realtime_cost_usd),
            format_usd(s.savings_usd),
        )
    table.add_row(
        "total",
        "",
        "",
        format_usd(c.batch_cost_usd),
        format_usd(c.realtime_cost_usd),
        format_usd(c.savings_usd),
    )
    console.print(table)


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


def print_summary(summary: Any) -> None:
    from halfrate.summary import JobSummary, format_usd

    s: JobSummary = summary
    table = Table(title=f"halfrate job {s.job_name} ({s.kind}, {s.model})", show_header=False)
    table.add_row("rows", f"{s.rows:,}")
    table.add_row("batches / attempts", f"{s.batches} / {s.attempts}")
    table.add_row("final states", ", ".join(f"{k} {v:,}" for k, v in s.final_states.items()))
    table.add_row("results", ", ".join(f"{k} {v:,}" for k, v in s.result_types.items()))
    for detail in s.details:
        if detail.shown:
            table.add_row(detail.title.lower(), detail.text)
    table.add_row(
        "tokens",
        f"input {s.input_tokens:,} · cache write {s.cache_write_5m_tokens + s.cache_write_1h_tokens:,}"
        f" · cache read {s.cache_read_tokens:,} · output {s.output_tokens:,}",
    )
    table.add_row("cost (batch prices)", format_usd(s.batch_cost_usd))
    table.add_row("real-time equivalent", format_usd(s.realtime_cost_usd))
    table.add_row("saved", format_usd(s.savings_usd))
    hit = "n/a" if s.cache_hit_rate is None else f"{s.cache_hit_rate:.1%}"
    table.add_row("cache hit rate", hit)
    table.add_row("warehouse", s.warehouse)
    console.print(table)
    if s.note:
        console.print(f"[yellow]{s.note}[/]")
    if s.staged_not_loaded:
        console.print(
            f"[yellow]{s.staged_not_loaded} batches staged, not yet loaded "
            "(warehouse busy): run `halfrate load JOB`[/]"
        )


def status(
    job: Annotated[str | None, typer.Argument(help="Job name; all jobs if omitted.")] = None,
) -> None:
    """Show jobs, their batches and where each stands."""
    from halfrate.status import job_status_rows, list_jobs

    settings = get_settings()
    if job is None:
        table = Table("job", "batches", "by status", "rows", title=f"jobs in {settings.workdir}")
        for job_row in list_jobs(settings.workdir):
            table.add_row(*job_row)
        console.print(table)
        return
    try:
        rows = job_status_rows(settings.workdir, job)
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    table = Table("attempt", "purpose", "file", "requests", "batch", "status", "counts", "expires")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def cancel(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Cancel every unfinished batch of a job (stops further spend); a run waiting on it ends
    Cancelled and sends nothing more. `halfrate run` later resumes the canceled rows."""
    from halfrate import pipeline

    try:
        canceled = pipeline.cancel(job, get_settings())
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print(f"canceled {len(canceled)} batch(es): {', '.join(canceled) or '-'}")


def recover(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Rebuild a job's lost ledger (its folder was deleted) from the warehouse and the API."""
    from halfrate.recover import recover as recover_job

    try:
        done = recover_job(job, get_settings())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"recovered {done.job_name}: {len(done.attached)} batch(es) attached"
        + (
            f", {len(done.to_reconcile)} file(s) to reconcile with the batch list"
            if done.to_reconcile
            else ""
        )
        + "; rerun the job to continue"
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
    console.print(f"{record.file.path} -> {record.batch_id}; rerun the job to continue")


def load(job: Annotated[str, typer.Argument(help="Job name.")]) -> None:
    """Load a job's staged (downloaded) batches into the warehouse."""
    from halfrate import pipeline

    try:
        result = pipeline.load_staged(job, get_settings())
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if result.deferred:
        raise fail(result.message or "warehouse busy", code=1)
    console.print(f"loaded {len(result.loaded)} batch(es) into {get_settings().warehouse}")


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run on the warehouse (read-only).")],
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 100,
    csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV (all rows) instead of a table.")
    ] = False,
) -> None:
    """Query the DuckDB warehouse (opened read-only, so it never blocks a writing job for long)."""
    import duckdb

    from halfrate.warehouse import WarehouseBusyError, connect

    path = get_settings().warehouse
    if not path.exists():
        raise fail(f"no warehouse at {path}: run a job first (`halfrate demo`)")
    try:
        with connect(path, read_only=True, retry_seconds=10) as con:
            cursor = con.execute(query)
            names = [d[0] for d in cursor.description or []]
            if csv:
                _write_csv(names, cursor)
                return
            rows = cursor.fetchmany(limit + 1)
    except (duckdb.Error, WarehouseBusyError) as exc:
        raise fail(str(exc).strip()) from None
    table = Table()
    for name in names:
        table.add_column(name, overflow="fold")  # wrap long values, never cut them off
    for row in rows[:limit]:
        table.add_row(*(_cell(name, v) for name, v in zip(names, row, strict=True)))
    console.print(table)
    if len(rows) > limit:
        console.print(f"(first {limit} rows; use --limit)")


def _cell(name: str, value: object) -> str:
    """A value for people: money columns (`*_usd`) rounded; --csv keeps them exact."""
    from decimal import Decimal

    from halfrate.summary import format_usd

    if value is None:
        return ""
    if name.endswith("_usd") and isinstance(value, int | float | Decimal):
        return format_usd(value)
    return str(value)


def _write_csv(names: list[str], cursor: Any) -> None:
    import csv as csvlib

    writer = csvlib.writer(sys.stdout)
    writer.writerow(names)
    while batch := cursor.fetchmany(10_000):
        writer.writerows(batch)


def version() -> None:
    """Print the halfrate version."""
    from halfrate import __version__

    typer.echo(__version__)
    sys.exit(0)


def export(
    job: Annotated[str, typer.Argument(help="Job name.")],
    format_: Annotated[str, typer.Option("--format", help="parquet, csv or jsonl.")] = "parquet",
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: data/exports/JOB.FORMAT).")
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
        done = export_job(job, get_settings(), fmt, out)
    except (FileNotFoundError, ValueError, WarehouseBusyError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"wrote {done.rows:,} rows of {job} to {done.path} (columns: {', '.join(done.columns)})",
        highlight=False,
    )
