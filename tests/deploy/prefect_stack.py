"""Driving a real local Prefect stack (server, worker, emulators) from the deployment tests."""

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "halfrate-local"
KEY_BLOCK = "anthropic-api-key"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default_signals() -> None:
    # A child of a background job may inherit an ignored SIGINT, and the worker turns SIGTERM
    # into SIGINT (prefect.md 3.6): give every process default dispositions.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass(frozen=True)
class FinishedRun:
    """A completed run of the pipeline deployment and where its job wrote."""

    id: str
    job: str
    tmp: Path
    watch_output: str


@dataclass
class Stack:
    """The running stack and helpers to drive it like a user would (CLI) or read it (REST)."""

    api_url: str
    ui_url: str
    env: dict[str, str]
    tmp: Path
    api_key: str
    emulators: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timeline: list[tuple[str, float]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a unit, never by name
            preexec_fn=_default_signals,
        )
        self.procs[name] = proc
        return proc

    def restart_server(self) -> None:
        """Stop the API server and start it again on the same port and database."""
        server = self.procs.pop("server")
        stop(server, grace=30)
        restarted = self.start("server-restarted", [str(a) for a in server.args], self.env)
        wait_http(f"{self.api_url}/health", restarted, self, "server-restarted")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def prefect(self, *args: str, timeout: float = 180) -> str:
        """Run the prefect CLI from the repository root, as docs/deploy.md does."""
        done = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call; a 503 (SQLite locked on a busy machine) is retried, as Prefect's
        own client does."""
        for attempt in range(10):
            response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
            if response.status_code != 503:
                break
            time.sleep(min(1 + attempt, 5))
        response.raise_for_status()
        return response.json() if response.content else None

    def cancel_active_runs(self) -> None:
        """Cancel (like the UI) every pipeline run still pending or running; wait until they end."""
        active = {
            "flows": {"name": {"any_": ["batch-job"]}},
            "flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}},
        }
        for run in self.api("POST", "/flow_runs/filter", active):
            if run["state_type"] != "CANCELLING":
                self.set_state(run["id"], "CANCELLING", "Cancelling", force=True)
        self.wait_for(
            "runs left behind to end",
            lambda: not self.api("POST", "/flow_runs/filter", active),
            timeout=120,
            every=1,
        )

    def set_state(self, run_id: str, type_: str, name: str, *, force: bool = False) -> None:
        body = {"state": {"type": type_, "name": name}, "force": force}
        self.api("POST", f"/flow_runs/{run_id}/set_state", body)

    def run_env(self, emulator: str, tmp: Path, poll: str = "1", **more: str) -> dict[str, str]:
        """A run's job-variable env. It replaces the deployment's: every key is repeated but
        PREFECT_LOGGING_EXTRA_LOGGERS, which the worker's environment carries (make prefect-up)."""
        return {
            "HALFRATE_WAREHOUSE": str(tmp / "warehouse.duckdb"),
            "HALFRATE_WORKDIR": str(tmp / "jobs"),
            "HALFRATE_POLL_INTERVAL": poll,
            "HALFRATE_MAX_POLL_INTERVAL": str(4 * float(poll)),  # the backoff's cap, scaled
            "HALFRATE_API_KEY_BLOCK": KEY_BLOCK,
            "ANTHROPIC_BASE_URL": self.emulators[emulator],
            **more,
        }

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The flow run's artifacts (their latest state: a progress artifact as updated)."""
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}}
        return list(self.api("POST", "/artifacts/filter", body))

    def artifact(self, run_id: str, key: str) -> dict[str, Any]:
        found = [a for a in self.artifacts(run_id) if a["key"] == key]
        assert len(found) == 1, f"{key}: {len(found)} artifacts of run {run_id}"
        return found[0]

    def log_entries(self, run_id: str) -> list[dict[str, Any]]:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
        return list(self.api("POST", "/logs/filter", body))

    def create_run(self, deployment: str, parameters: dict[str, Any], env: dict[str, str]) -> str:
        flow, name = deployment.split("/")
        dep = self.api("GET", f"/deployments/name/{flow}/{name}")
        run = self.api(
            "POST",
            f"/deployments/{dep['id']}/create_flow_run",
            {"parameters": parameters, "job_variables": {"env": env}},
        )
        return str(run["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/flow_runs/{run_id}"))

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float, every: float = 1.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.tails()}")

    def wait_for_state(self, run_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.flow_run(run_id)
            if run["state_type"] in states:
                return run
            if run["state_type"] in TERMINAL:
                raise AssertionError(
                    f"flow run {run_id} ended {run['state_name']}: {run['state']['message']}\n"
                    f"{self.run_logs(run_id)}"
                )
            return None

        return dict(self.wait_for(f"flow run {run_id} in {states}", reached, timeout))

    def task_runs(self, run_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
        return list(self.api("POST", "/task_runs/filter", body))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event that names the flow run (its own, its tasks', halfrate's)."""
        body = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 50}
        page = self.api("POST", "/events/filter", body)
        events = list(page["events"])
        while page.get("next_page"):
            page = httpx.get(page["next_page"], timeout=30).raise_for_status().json()
            events += page["events"]
        return events

    def run_logs(self, run_id: str) -> str:
        return "\n".join(entry["message"] for entry in self.log_entries(run_id))

    def emulator(self, name: str, method: str, path: str, body: Any = None) -> Any:
        headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        url = f"{self.emulators[name]}{path}"
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def flow_run_pids(self, run_id: str) -> list[int]:
        """Processes of one flow run that this stack started (found by their environment)."""
        return [pid for pid, env in our_processes(self.api_url) if f"={run_id}" in env]

    def tails(self) -> str:
        return f"set-up timeline (s): {self.timeline}\n" + "\n".join(
            f"--- {name}.log (tail)\n" + "\n".join(self.log(name).splitlines()[-15:])
            for name in self.procs
        )


def our_processes(api_url: str) -> list[tuple[int, str]]:
    """Flow-run processes whose environment points at this stack's API (no one else's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        variables = env.split("\0")
        if f"PREFECT_API_URL={api_url}" in variables and any(
            v.startswith("PREFECT__FLOW_RUN_ID=") for v in variables
        ):
            flow_run = next(v for v in variables if v.startswith("PREFECT__FLOW_RUN_ID="))
            found.append((int(entry.name), flow_run))
    return found


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def wait_http(url: str, proc: subprocess.Popen[bytes], stack: Stack, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}:\n{stack.log(name)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} not healthy at {url} after 120 s:\n{stack.log(name)}")


def base_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "HALFRATE_", "PREFECT_"))
    }


def audit_creates(stack: Stack, emulator: str) -> list[dict[str, Any]]:
    """Every batch create the emulator received, with its custom_ids, in order."""
    url = f"{stack.emulators[emulator]}/_emulator/audit?custom_ids=true"
    return list(httpx.get(url, timeout=30).json()["creates"])


def audit_custom_ids(stack: Stack, emulator: str) -> list[str]:
    """Every custom_id the emulator was asked to create a batch for, in order."""
    return [cid for create in audit_creates(stack, emulator) for cid in create["custom_ids"]]


def flow_run_id_from(output: str) -> str:
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, f"no flow run id in:\n{output}"
    return match.group(1)


def dump(value: Any) -> str:
    return json.dumps(value, default=str)


# Headless Chromium against the Prefect UI (shared/reference/prefect.md section 9).
OUTPUT = REPO / "tests" / "output"  # the screenshots are committed; CI keeps them as outputs
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",  # lets the single-page app fetch its data first
]


def chromium(
    url: str, profile: Path, *action: str, size: str = "1400,1000", scale: float = 1
) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian `chromium` is not installed (.ci/run installs it with apt-get)")
    flags = [*CHROMIUM_FLAGS, f"--window-size={size}", f"--force-device-scale-factor={scale}"]
    done = subprocess.run(
        [binary, *flags, f"--user-data-dir={profile}", *action, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(
    url: str, profile: Path, name: str, size: str = "1400,1000", scale: float = 1
) -> str:
    """A PNG of the page under tests/output/ (committed: what the UI shows, looked at), and
    the page's visible text, from one Chromium run. `scale` 2 draws twice the pixels: the run
    graph's small labels become legible."""
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / name
    shot.unlink(missing_ok=True)
    dom = chromium(url, profile, "--dump-dom", f"--screenshot={shot}", size=size, scale=scale)
    assert shot.stat().st_size > 10_000, f"{name}: an empty page?"
    return visible_text(dom)


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
