"""The `halfrate` command line."""

import typer

from halfrate.emulator.cli import emulator

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def version() -> None:
    """Print the halfrate version."""
    from halfrate import __version__

    typer.echo(__version__)


app.command("emulator")(emulator)
