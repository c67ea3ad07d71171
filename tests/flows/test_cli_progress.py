"""`halfrate run`, `export` and `load` draw bars for their long local steps on a terminal (the
flow's tasks run in the CLI's process and report to its bars), and nothing when piped."""

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli import progress as cli_progress
from cli.app import app
from halfrate_emulator import EmulatorServer
from tests.flows.conftest import write_job

pytestmark = pytest.mark.slow
runner = CliRunner()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTTY]:
    """The CLI's stdout is a terminal, and bars show at once (not after half a second)."""
    screen = FakeTTY()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    monkeypatch.setattr(cli_progress, "stdout", console)
    monkeypatch.setattr(cli_progress, "SHOW_AFTER", 0.0)
    yield screen


def test_run_export_and_load_show_bars_on_a_terminal(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path, tty: FakeTTY
) -> None:
    job = write_job(tmp_path, rows=60)
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 0, result.output
    bars = tty.getvalue()
    for step in ("extract intents.csv: checking rows", "build attempt 1", "load into"):
        assert step in bars, step
    assert "60/60 requests" in bars
    assert "download prime" in bars and "verify prime" in bars  # the priming batch's
    assert "download part-0001" in bars and "verify part-0001" in bars
    assert "59/59 results" in bars
    assert "━" not in result.output  # the bars are drawn on the terminal, not in the output

    tty.seek(0)
    tty.truncate()
    result = runner.invoke(app, ["export", "intents-demo", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "export intents-demo" in tty.getvalue() and "step 3 of 3" in tty.getvalue()

    tty.seek(0)
    tty.truncate()
    result = runner.invoke(app, ["load", "intents-demo"])  # nothing staged: the job's rows
    assert result.exit_code == 0, result.output
    assert "load into" in tty.getvalue()


def test_a_piped_run_draws_nothing(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=20)
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 0, result.output
    assert "━" not in result.output and "build attempt" not in result.output
