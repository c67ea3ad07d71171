"""`halfrate status JOB`: a job's request files and where each batch stands.

A table when it fits the terminal; otherwise a few lines per file, so that nothing a user copies
into another command (a batch id for `halfrate adopt`, a file path) is ever cut.
"""

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from cli.output import plain

HEADERS = ("attempt", "purpose", "file", "requests", "batch", "status", "counts", "expires")


def print_job_status(console: Console, name: str, rows: list[tuple[str, ...]]) -> None:
    """The job's files as a table, or as blocks of lines on a narrow terminal."""
    table = Table(*HEADERS, title=plain(f"job {name}"))
    for row in rows:
        table.add_row(*(plain(value) for value in row))
    unbounded = console.options.update(max_width=1_000_000)
    natural = Measurement.get(console, unbounded, table).maximum
    if natural <= console.width:
        console.print(table)
        return
    console.print(plain(f"job {name}: {len(rows)} request file(s)", "bold"))
    for attempt, purpose, path, requests, batch, status, counts, expires in rows:
        console.print(plain(f"{path}  (attempt {attempt}, {purpose}, {requests} requests)"))
        console.print(plain(f"  {status}  {batch}"), soft_wrap=True)
        if counts != "-" or expires != "-":
            console.print(plain(f"  {counts} · expires {expires}"), soft_wrap=True)
