"""halfrate: bulk Claude jobs at batch prices, landed in DuckDB."""

from typing import Any

import typer
from typer.core import TyperCommand

from cli import commands, lifetime, server_commands
from cli.pilot import pilot
from cli.sql import sql
from halfrate_emulator.cli import emulator

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

app.command("run")(commands.run)
app.command("demo")(commands.demo)
app.command("estimate")(commands.estimate)
app.command("pilot")(pilot)
app.command("status")(commands.status)
app.command("cancel")(commands.cancel)
app.command("adopt")(commands.adopt)
app.command("recover")(commands.recover)
app.command("load")(commands.load)
app.command("sql")(sql)
app.command("export")(commands.export)
app.command("version")(commands.version)


class PlainHelp(TyperCommand):
    """Click's own help layout, which wraps long option names instead of cutting them off (Rich's
    options table truncates `--processing-seconds` to `--processing-secon…` at 80 columns)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rich_markup_mode = None


app.command("emulator", cls=PlainHelp)(emulator)
app.add_typer(server_commands.app, name="server")


def main() -> None:
    """The `halfrate` command: this process ends without the interpreter's teardown."""
    lifetime.exit_without_teardown()
    try:
        app()
    except SystemExit as exc:
        lifetime.record_exit(exc.code)
        raise
