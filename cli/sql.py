"""`halfrate sql QUERY`: query the warehouse, read-only; the results fitted for people
(cli/tables.py), or CSV for programs."""

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.output import console, fail, note, plain
from halfrate.settings import get_settings


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run on the warehouse (read-only).")],
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 100,
    csv: Annotated[
        bool,
        typer.Option("--csv", help="Write CSV to stdout: every row, raw values, no formatting."),
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Show every column and value in full (no fitting).")
    ] = False,
) -> None:
    """Query the DuckDB warehouse (opened read-only, so it never blocks a writing job for long).

    Numbers are formatted for people (1,234,567; 0.7143; money as $12.35) and a wide table is
    fitted to the terminal (long values cut, the columns that do not fit named): --wide shows
    everything, --csv writes the raw values for machines.
    """
    import duckdb

    from cli.tables import one_line, result_table
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
    except duckdb.Error as exc:
        raise fail(one_line(str(exc))) from None
    except WarehouseBusyError as exc:
        raise fail(str(exc).strip()) from None
    fitted = result_table(names, rows[:limit], console.width, wide)
    out = console
    if wide and fitted.width > console.width:  # as wide as it is: the terminal may wrap it
        out = Console(file=console.file, width=fitted.width, color_system=console.color_system)
    out.print(fitted.table)
    if fitted.turned:
        note("(a line per column, a column per row: --wide shows the rows as rows)", style="dim")
    if fitted.hidden:
        more = f"{len(fitted.hidden)} more column{'s' if len(fitted.hidden) > 1 else ''}"
        console.print(
            plain(
                f"({more}: {', '.join(fitted.hidden)}; --wide shows them all, --csv writes them)"
            ),
            style="dim",
        )
    if not rows:
        note("(no rows)", style="dim")
    elif len(rows) > limit:
        note(f"(first {limit:,} rows; use --limit)", style="dim")


def _write_csv(names: list[str], cursor: Any) -> None:
    import csv as csvlib

    writer = csvlib.writer(sys.stdout)
    writer.writerow(names)
    while batch := cursor.fetchmany(10_000):
        writer.writerows(batch)
