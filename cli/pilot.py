"""`halfrate pilot JOB.yaml`: send a sample of the job's rows first and project its cost."""

from typing import Annotated, Any

import typer
from rich.table import Table

from cli.commands import (
    Debug,
    JobFile,
    OnEmulator,
    Overrides,
    _prefect_env,
    in_flow,
    parse_overrides,
)
from cli.output import console, errors_shown, fail, note, plain, warn
from cli.progress import terminal_progress
from cli.start import api_endpoint, check_before_start
from halfrate.config import NO_OVERRIDES, JobSpec
from halfrate.kinds.base import MAX_PILOT_ROWS

Rows = Annotated[
    int | None,
    typer.Option(
        "--rows",
        min=1,
        max=MAX_PILOT_ROWS,
        help="Rows the pilot samples across the source (default: the job's pilot_rows, else 40).",
    ),
]


def pilot(
    job_file: JobFile,
    rows: Rows = None,
    restart: Annotated[bool, typer.Option(help="Start the job over first.")] = False,
    set_: Overrides = None,
    emulator: OnEmulator = False,
    debug: Debug = False,
) -> None:
    """Run a pilot: a sample of the job's rows (spread across the source, the same on every
    run) as a real batch, then report what they used (output tokens per row, cache hit rate,
    cost per row, invalid outputs) and the whole job's projected cost next to the static
    estimate. The pilot's rows are part of the job: `halfrate run` sends only the others.

    Exit codes: 0 the report is printed; 1 unexpected error; 2 bad job, source, setting or
    key, or the budget (max_cost_usd) refuses the pilot or the projected whole job; 5
    canceled by the user.
    """
    with errors_shown(debug):
        spec = parse_overrides(set_ or [])
        check_before_start("pilot", [str(job_file)], spec, restart=restart, emulator=emulator)
        with api_endpoint(emulator) as ran_on, terminal_progress():
            report = run_pilot(str(job_file), spec, rows, restart, debug)
    if report is None:
        raise fail(
            "no pilot was sent: the job has fewer than two rows to send (a pilot samples rows "
            "other than the first); run it with `halfrate run`"
        )
    print_report(report, ran_on)
    from halfrate.pilot import projection_over_budget

    problem = projection_over_budget(report, report.max_cost_usd)
    if problem is not None:  # `halfrate run` would stop before the main batches
        raise fail(str(problem))


def run_pilot(
    job_file: str, spec: JobSpec | None, rows: int | None, restart: bool, debug: bool
) -> Any:
    """Run the pilot flow in this process, reporting to the server `_prefect_env` finds."""
    _prefect_env(debug)
    from flows.pilot import pilot_job

    overrides = spec or NO_OVERRIDES
    return in_flow(
        lambda: pilot_job(job_file=job_file, job=overrides, rows=rows or 0, restart=restart)
    )


def print_report(report: Any, ran_on_emulator: bool) -> None:
    from halfrate.pilot import projection_over_budget, report_lines
    from halfrate.summary import format_usd

    prices = "real-time prices" if report.prices == "realtime" else "batch prices"
    table = Table(
        title=plain(f"pilot of {report.job_name} ({report.model}), at {prices}"),
        show_header=False,
    )
    for what, figure in report_lines(report):
        table.add_row(plain(what), plain(figure))
    console.print(table)
    fits = projection_over_budget(report, report.max_cost_usd) is None  # else `pilot` fails
    if report.projected.expected is not None and fits:
        warm = ""
        if report.cold_cache_usd is not None:
            warm = f" (within {report.cache_ttl}, while the prompt cache is warm)"
        note(
            f"The whole job is projected at {format_usd(report.projected.expected)}; "
            f"`halfrate run` sends the other {report.remaining_requests:,} requests{warm}; the "
            "pilot's rows are done and never sent again.",
            style="",
        )
    for problem in report.problems:
        warn(problem)
    if ran_on_emulator:
        note(
            "Ran on the built-in emulator: its answers are stand-ins, so the output lengths "
            "(and the projection) are the emulator's, not a model's."
        )
