"""halfrate: bulk Claude jobs at batch prices, landed in DuckDB."""

import typer

from cli import commands, lifetime, server_commands
from halfrate_emulator.cli import emulator

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

app.command("run")(commands.run)
app.command("demo")(commands.demo)
app.command("estimate")(commands.estimate)
app.command("status")(commands.status)
app.command("cancel")(commands.cancel)
app.command("adopt")(commands.adopt)
app.command("recover")(commands.recover)
app.command("load")(commands.load)
app.command("sql")(commands.sql)
app.command("version")(commands.version)
app.command("emulator")(emulator)
app.add_typer(server_commands.app, name="server")


def main() -> None:
    """The `halfrate` command: this process ends without the interpreter's teardown."""
    lifetime.exit_without_teardown()
    try:
        app()
    except SystemExit as exc:
        lifetime.record_exit(exc.code)
        raise
