"""Progress bars on a terminal, nothing otherwise (tests run without a TTY: a console that
says it is a terminal stands in for one), and Prefect's log lines printed above the bars."""

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from cli import progress as cli_progress
from cli.app import app
from cli.progress import RichBars, terminal_progress
from halfrate import progress_hooks
from halfrate.progress_hooks import step

runner = CliRunner()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal(width: int = 120) -> Console:
    return Console(file=FakeTTY(), force_terminal=True, width=width, color_system=None)


def shown(console: Console) -> str:
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


@pytest.fixture
def immediate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars show at once (in use, a step must run half a second first)."""
    monkeypatch.setattr(cli_progress, "SHOW_AFTER", 0.0)


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch, immediate: None) -> Iterator[Console]:
    """The CLI's stdout is a terminal."""
    console = terminal()
    monkeypatch.setattr(cli_progress, "stdout", console)
    yield console


def test_a_terminal_shows_each_step_as_a_bar(immediate: None) -> None:
    console = terminal()
    with terminal_progress(console):
        assert isinstance(progress_hooks._hook, RichBars)
        with step("build attempt 1", 1_000, "requests") as progress:
            progress.advance(500)
        with step("download part-0001", unit="bytes") as progress:
            progress.set_total(2_000_000)
            progress.advance(1_500_000)
        with step("export t", 3, "steps") as progress:
            progress.advance(1)
            progress.describe("export t: reading its source rows")
    assert progress_hooks._hook is None  # the command's end takes the bars away
    out = shown(console)
    assert "build attempt 1" in out and "500/1,000 requests" in out
    assert "download part-0001" in out and "1.5 MB of 2.0 MB" in out
    assert "export t: reading its source rows" in out and "step 2 of 3" in out


def test_a_step_shorter_than_half_a_second_shows_no_bar() -> None:
    console = terminal()
    with terminal_progress(console), step("build attempt 1", 10, "requests") as progress:
        progress.advance(10)
    assert "build attempt 1" not in shown(console)


def test_without_a_terminal_nothing_is_drawn(immediate: None) -> None:
    console = Console(file=io.StringIO(), width=120)  # piped or redirected
    with terminal_progress(console):
        assert progress_hooks._hook is None
        with step("build attempt 1", 10, "requests") as progress:
            progress.advance(10)
    assert shown(console) == ""


def test_prefects_log_lines_print_above_the_bars(immediate: None) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    screen = FakeTTY()
    handler = PrefectConsoleHandler(stream=screen)
    logger = logging.getLogger("prefect.test-progress")
    logger.addHandler(handler)
    console = terminal()
    try:
        with terminal_progress(console), step("load into w.duckdb", 4, "results") as progress:
            logger.warning("Task run 'load-1' - loaded 1 batches")
            progress.advance(4)
        logger.warning("after the bars")
    finally:
        logger.removeHandler(handler)
    assert "loaded 1 batches" in shown(console)  # through the bars' console, above them
    assert "loaded 1 batches" not in screen.getvalue()
    assert "after the bars" in screen.getvalue()  # its own stream again


def write_job(folder: Path, rows: int) -> Path:
    texts = [f"ticket {i}: my card was charged twice" for i in range(rows)]
    pl.DataFrame({"id": [f"t{i}" for i in range(rows)], "text": texts}).write_parquet(
        folder / "tickets.parquet"
    )
    keys = {
        "name": "tickets",
        "source": "tickets.parquet",
        "labels": ["billing", "other"],
        "instructions": "Label the ticket.",
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(keys))
    return path


def test_estimate_shows_the_extract_on_a_terminal_only(tmp_path: Path, tty: Console) -> None:
    job = write_job(tmp_path, 5_000)
    result = runner.invoke(app, ["estimate", str(job), "--emulator"])
    assert result.exit_code == 0, result.output
    assert "Cost estimate for" in result.output  # the estimate itself, as ever
    bars = shown(tty)
    assert "extract tickets.parquet: checking rows" in bars and "5,000/5,000 rows" in bars
    assert "extract tickets.parquet: writing rows" in bars


def test_estimate_piped_prints_no_bar(tmp_path: Path) -> None:
    job = write_job(tmp_path, 5_000)
    result = runner.invoke(app, ["estimate", str(job), "--emulator"])
    assert result.exit_code == 0, result.output
    assert "checking rows" not in result.output and "━" not in result.output
