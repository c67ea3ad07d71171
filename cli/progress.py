"""Rich progress bars for the core's long local steps (halfrate/progress_hooks.py), on a terminal.

`terminal_progress()` sets the process's progress hook for one command when stdout is a
terminal, and nothing otherwise (piped or redirected output stays as it was). A bar shows
once its step has run `SHOW_AFTER` seconds (small inputs never flash one) and goes away when
the step ends: the step's log line says what it did. While bars are drawn, Prefect's log
lines (a `halfrate run` runs the flow's tasks in this process) are printed above them
instead of through them.
"""

import io
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from cli.output import console as stdout
from halfrate.progress_hooks import ProgressHook, StepProgress, Unit, set_hook

SHOW_AFTER = 0.5
"""Seconds a step runs before its bar shows."""


class _Amount(ProgressColumn):
    """`12,345/100,000 requests`, `45.2/70.7 MB`, or the count alone while the total is unknown."""

    def render(self, task: Task) -> RenderableType:
        unit: Unit = task.fields["unit"]
        done, total = int(task.completed), task.total
        if total is None and not done:  # activity only (e.g. Polars streaming a CSV)
            text = ""
        elif unit == "bytes":
            text = decimal(done) if total is None else f"{decimal(done)} of {decimal(int(total))}"
        elif unit == "steps":
            text = "" if total is None else f"step {min(done + 1, int(total))} of {int(total)}"
        else:
            text = f"{done:,} {unit}" if total is None else f"{done:,}/{int(total):,} {unit}"
        return Text(text, style="progress.download")


class _Bars(Progress):
    """A Progress that leaves out the steps younger than SHOW_AFTER."""

    def get_renderables(self) -> Iterable[RenderableType]:
        shown = [t for t in self.tasks if (t.elapsed or 0.0) >= SHOW_AFTER]
        if shown:
            yield self.make_tasks_table(shown)


class _Step:
    """One step's bar (a `StepProgress`)."""

    def __init__(self, bars: Progress, task: TaskID) -> None:
        self.bars, self.task = bars, task

    def advance(self, amount: int) -> None:
        self.bars.advance(self.task, amount)

    def describe(self, description: str) -> None:
        self.bars.update(self.task, description=description)

    def set_total(self, total: int | None) -> None:
        self.bars.update(self.task, total=total)


class RichBars:
    """The CLI's `ProgressHook`: the bars are drawn while at least one step runs."""

    def __init__(self, console: Console) -> None:
        self.bars = _Bars(
            SpinnerColumn(),
            TextColumn(
                "{task.description}",
                style="progress.description",
                markup=False,
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=48),
            ),
            BarColumn(bar_width=24),
            _Amount(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            refresh_per_second=5,
        )
        self.lock = threading.Lock()
        self.running = 0
        self.logs = _LogsAbove(console)

    def start(self, description: str, total: int | None, unit: Unit) -> StepProgress:
        with self.lock:
            if not self.running:
                self.logs.attach()
                self.bars.start()
            self.running += 1
            task = self.bars.add_task(description, total=total, unit=unit)
        return _Step(self.bars, task)

    def finish(self, progress: StepProgress) -> None:
        assert isinstance(progress, _Step)
        with self.lock:
            self.bars.refresh()  # its last state (shown only if it ran long enough)
            self.bars.remove_task(progress.task)
            self.running -= 1
            if not self.running:
                self.bars.stop()
                self.logs.detach()


class _LogsAbove:
    """Prefect's console log handlers print through the bars' console while they are drawn
    (a line written past the bars would be drawn over)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.saved: list[tuple[Any, Any]] = []

    def attach(self) -> None:
        for handler in _prefect_console_handlers():
            file = handler.console.file
            if _is_terminal(file) and not isinstance(file, _Above):
                self.saved.append((handler, file))
                handler.console.file = _Above(self.console, file)

    def detach(self) -> None:
        for handler, file in self.saved:
            handler.console.file = file
        self.saved.clear()


class _Above(io.TextIOBase):
    """A terminal's stand-in whose lines `console` prints above its bars, colours kept.

    (Rich's own FileProxy would not do: a Console writes past it, to the file it wraps.)
    """

    def __init__(self, console: Console, file: Any) -> None:
        self.console, self.file, self.partial = console, file, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self.file.fileno())


def _is_terminal(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (ValueError, OSError):  # closed
        return False


def _prefect_console_handlers() -> list[Any]:
    if "prefect" not in sys.modules:  # nothing of Prefect's runs in this command
        return []
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {
        id(h): h
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for h in logger.handlers
        if isinstance(h, PrefectConsoleHandler)
    }
    return list(handlers.values())


@contextmanager
def terminal_progress(console: Console | None = None) -> Iterator[None]:
    """Show the core's long steps as bars while this runs, if `console` (by default the
    CLI's stdout) is a terminal."""
    console = console or stdout
    if not console.is_terminal:
        yield
        return
    hook: ProgressHook = RichBars(console)
    previous = set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)
