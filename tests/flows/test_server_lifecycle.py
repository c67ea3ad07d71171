"""The Prefect server `halfrate run` reports to: kept between runs, and nothing else outlives a run.

Real `halfrate` processes, real Prefect servers, PREFECT_HOME in a temporary folder. The kept
server is a deliberate daemon (recorded in PREFECT_HOME); every other process a run starts
must end with it, whether it ends normally, by SIGTERM or by SIGKILL.
"""

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer
from tests.flows.conftest import halfrate_bin, running_emulator, write_job

pytestmark = pytest.mark.slow
STARTED = "Started a local Prefect server"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The PREFECT_HOME of the kept-server tests (one database, migrated once)."""
    path = tmp_path_factory.mktemp("prefect-home")
    yield path
    subprocess.run([halfrate_bin(), "server", "stop"], env=env_for(path), timeout=120)
    assert processes_using(path) == set(), "the kept server outlived `halfrate server stop`"


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """Batches take an hour of virtual time: a run sits in await-completion until it moves."""
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra


def halfrate(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [halfrate_bin(), *args],
        env=env_for(home, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def record(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "halfrate-server.json").read_text()))


def processes_using(home: Path) -> set[int]:
    """Every live process whose environment names this PREFECT_HOME."""
    found = set()
    marker = f"PREFECT_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if stat[0] != "Z":
                        found.add(int(entry.name))
            except OSError:
                continue
    return found


def wait_until(check: Any, what: str, timeout: float = 60, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{tail}")


def described(pids: set[int]) -> list[str]:
    """Each process as `pid: command line` (for failure messages)."""
    lines = []
    for pid in sorted(pids):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = "(gone)"
        lines.append(f"{pid}: {cmdline}")
    return lines


def flow_runs(api_url: str) -> list[dict[str, Any]]:
    body = {"sort": "START_TIME_DESC", "limit": 50}
    return list(httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=30).json())


def ledger_statuses() -> list[BatchStatus | None]:
    path = get_settings().workdir / "intents-demo" / "ledger.sqlite"
    return [r.status for r in Ledger(path).records()] if path.exists() else []


def test_the_first_run_starts_the_server_and_later_runs_reuse_it(
    home: Path, emulator: EmulatorServer, tmp_path: Path
) -> None:
    halfrate(home, "server", "stop")
    job = write_job(tmp_path, rows=10, prime_cache=False)
    first = halfrate(home, "run", str(job))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(STARTED) == 1  # said once, with the UI's address
    server = record(home)
    assert f"UI at {server['api_url'].removesuffix('/api')}" in first.stdout

    second = halfrate(home, "run", str(job), "--restart")
    assert second.returncode == 0, second.stderr
    assert STARTED not in second.stdout + second.stderr
    assert record(home)["pid"] == server["pid"]
    runs = flow_runs(server["api_url"])[:2]
    assert [r["state_type"] for r in runs] == ["COMPLETED", "COMPLETED"]  # both in its UI

    status = halfrate(home, "server", "status")
    assert status.returncode == 0 and "running" in status.stdout


def test_a_dead_server_is_started_again_and_stop_stops_it(
    home: Path, emulator: EmulatorServer, tmp_path: Path
) -> None:
    assert halfrate(home, "server", "start").returncode == 0
    dead = record(home)["pid"]
    os.killpg(dead, signal.SIGKILL)
    wait_until(lambda: dead not in processes_using(home), "the server to die")

    done = halfrate(home, "run", str(write_job(tmp_path, rows=5, prime_cache=False)))
    assert done.returncode == 0, done.stderr
    assert f"(pid {dead}) is not running: starting it again" in done.stdout
    assert record(home)["pid"] != dead

    stopped = halfrate(home, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert processes_using(home) == set()
    assert not (home / "halfrate-server.json").exists()
    assert halfrate(home, "server", "status").returncode == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killing_a_run_mid_wait_leaves_only_the_kept_server(
    home: Path, slow_emulator: EmulatorServer, tmp_path: Path, sig: signal.Signals
) -> None:
    assert halfrate(home, "server", "start").returncode == 0
    server = record(home)
    job = write_job(tmp_path, rows=20, prime_cache=False)
    with (tmp_path / "run.log").open("wb") as log:
        proc = subprocess.Popen(
            [halfrate_bin(), "run", str(job)], env=env_for(home), stdout=log, stderr=log
        )
    wait_until(lambda: BatchStatus.submitted in ledger_statuses(), "a submitted batch")
    time.sleep(1)  # polling: the run is in await-completion
    os.kill(proc.pid, sig)  # the CLI alone, as a user's kill does
    try:  # a clean exit has a deadline (cli/lifetime.py SIGNAL_GRACE_S)
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"halfrate run outlived its {sig.name}:\n{(tmp_path / 'run.log').read_text()}")
    assert code == (128 + sig if sig == signal.SIGTERM else -sig)
    wait_until(
        lambda: processes_using(home) == {server["pid"]},
        "only the kept server left",
        30,
        tmp_path / "run.log",
    )
    if sig == signal.SIGTERM:  # a clean end: the run is recorded as Crashed, not left Running
        assert flow_runs(server["api_url"])[0]["state_type"] == "CRASHED"
        last = (tmp_path / "run.log").read_text().rstrip().splitlines()[-1]
        assert last.startswith("interrupted by SIGTERM: every batch sent is recorded"), last

    slow_emulator.admin.advance_clock(3600)
    rerun = halfrate(home, "run", str(job))
    assert rerun.returncode == 0, rerun.stderr
    assert STARTED not in rerun.stdout and record(home)["pid"] == server["pid"]
    assert len(slow_emulator.admin.audit()) == 1  # resumed, not sent again


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_run_with_a_server_of_its_own_takes_it_down_whatever_ends_it(
    tmp_path_factory: pytest.TempPathFactory,
    slow_emulator: EmulatorServer,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    home = tmp_path_factory.mktemp("own-server-home")
    job = write_job(tmp_path, rows=20, prime_cache=False)
    with (tmp_path / "run.log").open("wb") as log:
        proc = subprocess.Popen(
            [halfrate_bin(), "run", str(job)],
            env=env_for(home, HALFRATE_PREFECT_SERVER="run"),
            stdout=log,
            stderr=log,
        )
    log = tmp_path / "run.log"
    wait_until(lambda: BatchStatus.submitted in ledger_statuses(), "a submitted batch", 180, log)
    running = processes_using(home)
    assert len(running) == 2, described(running)  # the CLI and its server
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    wait_until(lambda: processes_using(home) == set(), "the run's server to end with it", 30, log)
    assert not (home / "halfrate-server.json").exists()  # nothing kept


def test_a_prefect_api_url_that_does_not_answer_stops_the_run_before_anything_is_sent(
    home: Path, emulator: EmulatorServer, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    done = halfrate(home, "run", str(write_job(tmp_path, rows=5)), PREFECT_API_URL=url)
    assert done.returncode == 2  # a setting to fix
    assert f"PREFECT_API_URL={url} does not answer" in done.stderr
    assert "unset PREFECT_API_URL" in done.stderr
    calls = [(r["method"], r["path"]) for r in emulator.admin.requests()]
    sent = [c for c in calls if c[1].startswith("/v1/")]
    assert set(sent) <= {("GET", "/v1/messages/batches")}  # at most the free key check
    assert emulator.admin.audit() == []
