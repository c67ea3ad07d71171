"""`halfrate server start|status|stop`: the local Prefect server halfrate keeps between runs."""

from typing import Annotated

import typer
from rich.console import Console

from cli import server

app = typer.Typer(
    no_args_is_help=True,
    help="The local Prefect server (API and UI) that `halfrate run` starts once and reuses.",
)
console = Console(soft_wrap=True)


@app.command()
def start(
    port: Annotated[
        int | None, typer.Option(help="Port (default: the last one, else 4200, else any).")
    ] = None,
) -> None:
    """Start the server (or find it running); runs then report to it."""
    try:
        record = server.start(port, say=lambda line: console.print(line, highlight=False))
    except server.ServerError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"Prefect server running: UI {record.ui_url}  API {record.api_url}", highlight=False
    )
    console.print(f"pid {record.pid}, log {record.log}", highlight=False)


@app.command()
def status() -> None:
    """Show the recorded server and whether it answers (exit 1 when none runs)."""
    record, up = server.status()
    if record is None:
        console.print(f"no halfrate Prefect server recorded in {server.prefect_home()}")
        raise typer.Exit(1)
    state = "running" if up else "not running"
    console.print(f"{state}: UI {record.ui_url} (pid {record.pid}, since {record.started_at})")
    console.print(f"log {record.log}", highlight=False)
    if not up:
        raise typer.Exit(1)


@app.command()
def stop() -> None:
    """Stop the server (runs in flight fail to report; their batches are safe in the ledger)."""
    record = server.stop()
    if record is None:
        console.print(f"no halfrate Prefect server recorded in {server.prefect_home()}")
        return
    console.print(f"stopped the Prefect server at {record.ui_url} (pid {record.pid})")
