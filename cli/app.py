"""halfrate: bulk Claude jobs at batch prices, landed in DuckDB."""

import typer

from cli import commands
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
app.command("export")(commands.export)
app.command("version")(commands.version)
app.command("emulator")(emulator)
