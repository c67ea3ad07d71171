"""What the CLI prints and how it exits: one clear line per problem, never Rich markup.

Messages carry user text (paths, keys, patterns such as `^[a-z0-9][a-z0-9_-]{0,47}$`, YAML
snippets), so they are printed as plain `Text`: Rich would take `[...]` for markup and eat it.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from halfrate.errors import is_actionable

if TYPE_CHECKING:  # the summary module imports DuckDB: only a finished run needs it
    from halfrate.summary import ChainSummary, JobSummary

EMULATOR_NOTE = (
    "Ran on the built-in emulator, a deterministic stand-in for the API, not a model: the "
    "outputs are placeholders (labels and scores are word-overlap guesses, records are "
    "schema-valid placeholders, answers echo the question); the costs are what the real API "
    "would charge for the same tokens."
)
FAILURES_SHOWN = 10

console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths in errors stay copy-pasteable


class ExitCode(IntEnum):
    """`halfrate run` (and the other commands) exit with one of these (README: Exit codes)."""

    ok = 0
    """Done: every row succeeded."""
    error = 1
    """Failed unexpectedly (a bug or a lasting outage); rerunning resumes. --debug shows more."""
    refused = 2
    """A person must act first: a bad job file, source, setting or key, a budget, a refusal
    by the API. The message says what to fix."""
    rows_not_succeeded = 3
    """The run completed, but some rows ended failed, exhausted, invalid_output, canceled or
    quarantined (listed with their reasons)."""
    unfinished = 4
    """Results are staged but not loaded (the warehouse was busy: `halfrate load JOB`), or
    rows are still pending (rerun the job)."""
    canceled = 5
    """The user canceled the job while it ran; `halfrate run` resumes it."""


class Canceled(Exception):
    """The user canceled the job while it ran (the flow ended Cancelled)."""


def plain(text: object, style: str = "") -> Text:
    """`text` as Rich prints it literally (no markup, no highlighting)."""
    return Text(str(text), style=style)


def fail(message: str, code: int = ExitCode.refused) -> typer.Exit:
    """Print `error: <message>` to stderr; the caller raises what this returns."""
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
    return typer.Exit(code)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), message), highlight=False)


def note(message: str, style: str = "yellow") -> None:
    """A line for people, never cut into pieces (commands in it stay copy-pasteable)."""
    console.print(plain(message, style), highlight=False, soft_wrap=True)


@contextmanager
def errors_shown(debug: bool) -> Iterator[None]:
    """Turn an exception into one line on stderr and an exit code (a traceback with --debug).

    An actionable error (a bad job, input, setting or key: `halfrate.errors.is_actionable`)
    exits 2; anything else is unexpected and exits 1.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Canceled as exc:
        err.print(Text.assemble(("canceled: ", "bold yellow"), str(exc)), highlight=False)
        raise typer.Exit(ExitCode.canceled) from None
    except Exception as exc:
        if is_actionable(exc):
            if debug:
                err.print_exception()
            raise fail(str(exc)) from None
        if debug:
            raise
        raise fail(
            f"{type(exc).__name__}: {exc} (unexpected; rerunning resumes the job; `--debug` "
            "shows the traceback)",
            ExitCode.error,
        ) from None


class _ActionableWithoutTraceback(logging.Filter):
    """Prefect logs a failed task's or flow's exception with its traceback; for an actionable
    error the message is the whole story, so the traceback is dropped (not with --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and is_actionable(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True


RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
_FILTER = _ActionableWithoutTraceback()


def quiet_actionable_tracebacks(debug: bool) -> None:
    """Install (or with --debug, remove) the filter on the loggers of flow and task runs."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if debug:
            logger.removeFilter(_FILTER)
        else:
            logger.addFilter(_FILTER)


def finish(summary: "JobSummary", say_emulator: bool = True) -> ExitCode:
    """Print the summary and what needs attention; the exit code that says how it ended. A run
    on the emulator (the summary probed its endpoint) says so, unless `say_emulator` is off."""
    from halfrate.summary import Verdict

    s = summary
    if say_emulator and s.on_emulator:
        s = s.model_copy(update={"note": " ".join(filter(None, (s.note, EMULATOR_NOTE)))})
    print_summary(s)
    if s.verdict is Verdict.succeeded:
        return ExitCode.ok
    print_failures(s)
    note(s.outcome, style="bold yellow")
    if s.verdict is Verdict.unfinished:
        return ExitCode.unfinished
    return ExitCode.rows_not_succeeded


def finish_chain(chain: "ChainSummary") -> ExitCode:
    """Each stage as `finish` prints it, then the cost per stage and in total; the exit code
    of the stage that ended worst."""
    from halfrate.summary import format_usd

    last = len(chain.stages) - 1  # the emulator's note once, after the last stage
    codes = [finish(s, say_emulator=i == last) for i, s in enumerate(chain.stages)]
    table = Table("stage", "kind", "rows", "cost (batch)", "real-time", "saved", title="chain")
    for s in chain.stages:
        costs = (s.batch_cost_usd, s.realtime_cost_usd, s.savings_usd)
        table.add_row(plain(s.job_name), s.kind, f"{s.rows:,}", *map(format_usd, costs))
    totals = (chain.batch_cost_usd, chain.realtime_cost_usd, chain.savings_usd)
    table.add_row("total", "", "", *map(format_usd, totals))
    console.print(table)
    if chain.realtime_spend_usd:
        note(
            f"spent in real time (full price, on top of the batch cost): "
            f"{format_usd(chain.realtime_spend_usd)}"
        )
    return max(codes, default=ExitCode.ok)


def print_summary(s: "JobSummary") -> None:
    from halfrate.summary import format_usd, realtime_lines

    table = Table(
        title=plain(f"halfrate job {s.job_name} ({s.kind}, {s.model})"), show_header=False
    )

    def row(name: str, value: str) -> None:
        table.add_row(plain(name), plain(value))

    row("rows", f"{s.rows:,}")
    row("batches / attempts", f"{s.batches} / {s.attempts}")
    row("final states", ", ".join(f"{k} {v:,}" for k, v in s.final_states.items()))
    row("results", ", ".join(f"{k} {v:,}" for k, v in s.result_types.items()))
    for detail in s.details:
        if detail.shown:
            row(detail.title.lower(), detail.text)
    row(
        "tokens",
        f"input {s.input_tokens:,} · cache write {s.cache_write_5m_tokens + s.cache_write_1h_tokens:,}"
        f" · cache read {s.cache_read_tokens:,} · output {s.output_tokens:,}",
    )
    row("cost (batch prices)", format_usd(s.batch_cost_usd))
    if s.realtime_rows or s.possible_duplicate_requests:
        row("cost (real time, full price)", format_usd(s.realtime_spend_usd))
        row("cost (total)", format_usd(s.cost_usd))
    row("real-time equivalent", format_usd(s.realtime_cost_usd))
    row("saved", format_usd(s.savings_usd))
    row("cache hit rate", "n/a" if s.cache_hit_rate is None else f"{s.cache_hit_rate:.1%}")
    row("warehouse", s.warehouse)
    console.print(table)
    for line in realtime_lines(s):
        note(line)
    if s.note:
        note(s.note)
    if s.staged_not_loaded:
        note(
            f"{s.staged_not_loaded} batches staged, not yet loaded (warehouse busy): run "
            f"`halfrate load {s.job_name}`"
        )


def print_failures(s: "JobSummary") -> None:
    """The first rows that did not succeed, by source row, and the query for all of them."""
    if not s.failures:
        return
    table = Table("row", "id", "final state", "reason", title=plain("rows that did not succeed"))
    for failure in s.failures[:FAILURES_SHOWN]:
        shown_id = "(no id)" if failure.row_id is None else repr(failure.row_id)
        table.add_row(
            plain(failure.row_number or ""),
            plain(shown_id),
            plain(failure.final_state),
            plain(failure.reason or ""),
        )
    console.print(table)
    query = (
        "select row_number, row_id, final_state, reason from row_outcomes "
        f"where job_name = '{s.job_name}' and final_state <> 'succeeded' order by row_number"
    )
    console.print(plain(f'{s.rows_not_succeeded:,} in all: halfrate sql "{query}"'), soft_wrap=True)
