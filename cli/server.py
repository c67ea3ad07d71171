"""The Prefect server a run reports to: the one PREFECT_API_URL names, or halfrate's own.

Without PREFECT_API_URL, the first `halfrate run` starts a local Prefect server (API and UI)
and keeps it: a deliberate daemon in its own session, recorded in
`$PREFECT_HOME/halfrate-server.json` (pid, port, URL), logging to `halfrate-server.log`
beside it. Later runs find it there, check its health and connect in milliseconds instead of
starting a temporary server each time (~4-7 s and ~5 CPU-s here); a dead one is started
again. `halfrate server start|status|stop` manage it by hand. With
HALFRATE_PREFECT_SERVER=run a run starts a server of its own instead and stops it when it
ends, also when it is killed (cli/lifetime.py): for CI and containers.
"""

import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cli import lifetime

STATE_FILE = "halfrate-server.json"
LOG_FILE = "halfrate-server.log"
LOCK_FILE = "halfrate-server.lock"
DEFAULT_PORT = 4200
START_TIMEOUT = 180.0  # a new database runs its migrations first (~15 s on a busy machine)


class ServerError(RuntimeError):
    """halfrate's own Prefect server did not start (its log says why)."""


class ServerUnreachable(ServerError):
    """PREFECT_API_URL names a server that does not answer: a setting to fix."""


@dataclass(frozen=True)
class ServerRecord:
    """What `halfrate-server.json` records of the kept server."""

    pid: int
    port: int
    api_url: str
    log: str
    started_at: str

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @classmethod
    def read(cls, home: Path) -> "ServerRecord | None":
        try:
            return cls(**json.loads((home / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, home: Path) -> None:
        tmp = home / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(home / STATE_FILE)


def prefect_home() -> Path:
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, a Prefect profile or the active settings."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def ensure_server(say: Callable[[str], None]) -> str:
    """The API URL this process's flow runs report to; starts halfrate's server if needed."""
    from halfrate.settings import get_settings

    url = configured_api_url()
    if url:
        if not healthy(url, timeout=5.0):
            raise ServerUnreachable(
                f"PREFECT_API_URL={url} does not answer ({url.rstrip('/')}/health): start that "
                "Prefect server, or unset PREFECT_API_URL and halfrate starts a local one"
            )
        return url
    if get_settings().prefect_server == "run":
        url = start_for_this_run(prefect_home())
    else:
        url = start(say=say).api_url
    _use(url)
    return url


def _use(api_url: str) -> None:
    """Point this process's Prefect client at `api_url` (also if Prefect is imported already)."""
    os.environ["PREFECT_API_URL"] = api_url
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def start(port: int | None = None, say: Callable[[str], None] = print) -> ServerRecord:
    """The kept server: the recorded one if it answers, else a new one (said once)."""
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        previous = ServerRecord.read(home)
        if previous is not None and _still_serving(previous, port):
            return previous
        if previous is not None:
            say(f"halfrate's Prefect server (pid {previous.pid}) is not running: starting it again")
        record, proc = _spawn(home, _port(port, previous))
        if not _wait_healthy(record, START_TIMEOUT, proc):
            lifetime.terminate_group(record.pid)
            (home / STATE_FILE).unlink(missing_ok=True)
            raise ServerError(
                f"the Prefect server did not start; see {record.log}:\n{_tail(record.log)}"
            )
    say(
        f"Started a local Prefect server (UI at {record.ui_url}, log {record.log}); it keeps "
        "running for later runs: `halfrate server stop` stops it."
    )
    return record


def _still_serving(record: ServerRecord, port: int | None) -> bool:
    """The recorded server answers (it may still be starting for another run); one alive
    but never healthy is stopped."""
    if not _alive(record.pid):
        return False
    if port is not None and port != record.port:
        raise ServerError(
            f"halfrate's Prefect server already runs at {record.ui_url} (pid {record.pid}); "
            f"`halfrate server stop` first to move it to port {port}"
        )
    if _wait_healthy(record, START_TIMEOUT):
        return True
    lifetime.terminate_group(record.pid)
    return False


def stop() -> ServerRecord | None:
    """Stop the kept server; None when none was recorded."""
    home = prefect_home()
    with _locked(home):
        record = ServerRecord.read(home)
        if record is not None and _alive(record.pid):
            lifetime.terminate_group(record.pid)
        (home / STATE_FILE).unlink(missing_ok=True)
    return record


def status() -> tuple[ServerRecord | None, bool]:
    """The recorded server and whether it answers."""
    record = ServerRecord.read(prefect_home())
    return record, record is not None and _alive(record.pid) and healthy(record.api_url)


def start_for_this_run(home: Path) -> str:
    """A server that lives as long as this process (HALFRATE_PREFECT_SERVER=run)."""
    home.mkdir(parents=True, exist_ok=True)
    port = lifetime.free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log_path = home / f"halfrate-server-run-{os.getpid()}.log"
    with log_path.open("wb") as log:
        proc = lifetime.start_child(_server_args(), env=_server_env(home, port), log=log)
    record = ServerRecord(proc.pid, port, api_url, str(log_path), _now())
    if not _wait_healthy(record, START_TIMEOUT, proc):
        lifetime.stop(proc)
        raise ServerError(f"the Prefect server did not start; see {log_path}:\n{_tail(log_path)}")
    return api_url


def _spawn(home: Path, port: int) -> tuple[ServerRecord, "subprocess.Popen[bytes]"]:
    """Start the server detached (its own session: no terminal signal reaches it)."""
    log_path = home / LOG_FILE
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _server_args(),
            env=_server_env(home, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ServerRecord(proc.pid, port, f"http://127.0.0.1:{port}/api", str(log_path), _now())
    record.write(home)  # before the wait: a CLI killed now leaves it recorded, not lost
    return record, proc


def _server_args() -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start"]


def _server_env(home: Path, port: int) -> dict[str, str]:
    """The caller's environment without secrets, bound to 127.0.0.1:port (UI included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "HALFRATE_"))}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",  # what the UI calls
        "PREFECT_SERVER_ANALYTICS_ENABLED": env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    }


def _wait_healthy(
    record: ServerRecord, timeout: float, proc: "subprocess.Popen[bytes] | None" = None
) -> bool:
    """Whether it answers within `timeout` (False as soon as it is seen dead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(record.api_url):
            return True
        if (proc.poll() is not None) if proc is not None else not _alive(record.pid):
            return False
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    """`pid` runs a Prefect server (not another process that reused the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): trust the pid
        return lifetime.pid_exists(pid)
    return b"prefect\0server\0start" in cmdline and not lifetime.is_zombie(pid)


def _port(wanted: int | None, previous: ServerRecord | None) -> int:
    """`wanted`, else the previous port (the UI keeps its address), else 4200, else any."""
    if wanted is not None:
        if lifetime.port_free(wanted):
            return wanted
        raise ServerError(f"port {wanted} is in use: pick another with --port")
    for port in (previous.port if previous else None, DEFAULT_PORT):
        if port is not None and lifetime.port_free(port):
            return port
    return lifetime.free_port()


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One process at a time decides whether to start the server (no two servers)."""
    with (home / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(path: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
