"""Progress of the long local steps (extract, build, download, verify, load, export), for whoever
shows it.

A step reports through `step()`: a `StepProgress` it advances once per record batch, file or
network chunk, never per row, so a step costs the same with nobody watching. Nothing is shown
unless a `ProgressHook` is set, and only the CLI sets one (`halfrate run`, `estimate`, `load`
and `export`, when stdout is a terminal: Rich bars), for its whole process. A `halfrate run`
runs the flow in the CLI's process, so the flow's tasks report to the CLI's bars; a
deployment's run happens in a process the CLI did not start, where no hook is set and nothing
is printed. Tasks and flows never set a hook.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

Unit = Literal["rows", "files", "requests", "results", "bytes", "steps"]


class StepProgress(Protocol):
    """One running step."""

    def advance(self, amount: int) -> None:
        """`amount` more units are done."""

    def describe(self, description: str) -> None:
        """What the step is doing now (e.g. the phase of an export)."""

    def set_total(self, total: int | None) -> None:
        """The step's size, once it is known (e.g. a download's Content-Length)."""


class ProgressHook(Protocol):
    """Whoever shows progress: starts and ends the display of each step (from any thread)."""

    def start(self, description: str, total: int | None, unit: Unit) -> StepProgress:
        """A step begins: `total` units (None: unknown, shown as activity only)."""

    def finish(self, progress: StepProgress) -> None:
        """The step ended (done, or stopped by an error)."""


class _Silent:
    """The step nobody watches: every call does nothing."""

    def advance(self, amount: int) -> None:
        pass

    def describe(self, description: str) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


SILENT: StepProgress = _Silent()

_hook: ProgressHook | None = None


def set_hook(hook: ProgressHook | None) -> ProgressHook | None:
    """Show the process's steps with `hook` (None: show nothing); returns the one before.

    Only the CLI calls this, for its own process.
    """
    global _hook
    previous, _hook = _hook, hook
    return previous


@contextmanager
def step(description: str, total: int | None = None, unit: Unit = "rows") -> Iterator[StepProgress]:
    """Report one long step; with no hook set it costs a no-op call per `advance`."""
    hook = _hook
    if hook is None:
        yield SILENT
        return
    progress = hook.start(description, total, unit)
    try:
        yield progress
    finally:
        hook.finish(progress)
