"""How the `halfrate` process ends: nothing it starts outlives it (except the kept server).

A child started with `start_child` gets a parent-death signal (Linux `PR_SET_PDEATHSIG`), so
even a SIGKILL of the CLI takes it down, and is stopped when the CLI exits. `handle_signals`
turns SIGTERM (and SIGHUP) into a normal exit, so the flow run is recorded as Crashed,
context managers close and the exit handlers stop the children. The kept server
(`cli/server.py`) is started detached instead: it is a documented daemon, not a child.
"""

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[bytes]] = []
_exit_code = 0


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def start_child(
    args: Sequence[str], *, env: dict[str, str], log: IO[bytes], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a helper process that dies with this one (and is stopped at its exit)."""
    parent = os.getpid()
    proc = subprocess.Popen(
        list(args),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: _die_with_parent(parent),
    )
    if not _children:
        atexit.register(stop_children)
    _children.append(proc)
    return proc


def stop(proc: "subprocess.Popen[bytes]", grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_children() -> None:
    while _children:
        stop(_children.pop())


SIGNAL_GRACE_S = 20.0
"""After SIGTERM, the longest a clean exit may take (flushing logs and events to Prefect)."""
_signaled = False
INTERRUPTED = (
    "interrupted by {signal}: every batch sent is recorded in the job's ledger; run the same "
    "command again to resume (nothing is sent twice)"
)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """The first signal starts a clean exit with a deadline; a second one ends it at once."""
    global _signaled
    code = 128 + signum
    if _signaled:
        os._exit(code)
    _signaled = True
    record_exit(code)
    deadline = threading.Timer(SIGNAL_GRACE_S, os._exit, (code,))
    deadline.daemon = True  # a clean exit that hangs (a Prefect server that does not answer)
    deadline.start()
    raise SystemExit(code)


def handle_signals() -> None:
    """SIGTERM and SIGHUP end the CLI cleanly (exit code 128 + signal) within SIGNAL_GRACE_S.

    Prefect's flow engine catches SIGTERM while a flow runs (the run is marked Crashed), then
    hands the signal back to this handler.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _exit_on_signal)


def exit_without_teardown() -> None:
    """End the process right after the exit handlers, skipping the interpreter's teardown.

    Registered before Prefect's handlers, so it runs after them (and after Prefect's queue
    services drained their logs and events, which happens even before the handlers). What it
    skips is freeing ~100k modules' objects one by one: ~0.7 CPU-seconds and as much wall
    time at the end of every run, and DuckDB's "leaked instance" noise. Every file and
    database halfrate writes is closed (and committed) before; stdout, stderr and logging are
    flushed here. Only for the `halfrate` command's own process, never in-process callers.
    """
    atexit.register(_exit_now)


def record_exit(code: object) -> None:
    """The exit status `sys.exit(code)` would give (None 0, an int itself, anything else 1)."""
    global _exit_code
    _exit_code = code if isinstance(code, int) else 0 if code is None else 1


def _exit_now() -> None:
    logging.shutdown()
    if _signaled:  # the run's last word, after Prefect's "Crashed" line
        name = signal.Signals(_exit_code - 128).name if _exit_code > 128 else "a signal"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(INTERRUPTED.format(signal=name) + "\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(_exit_code)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def terminate_group(pid: int, grace: float = 20.0) -> None:
    """SIGTERM a process group (its leader `pid`), SIGKILL it after `grace` seconds."""
    for sig, wait in ((15, grace), (9, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_exists(pid) or is_zombie(pid):
                return
            time.sleep(0.1)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
