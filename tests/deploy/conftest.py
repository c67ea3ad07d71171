"""A real local Prefect stack for the deployment tests: server, work pool, worker, emulators.

Everything runs as subprocesses on free loopback ports with PREFECT_HOME in a temporary folder,
is deployed from the repository's prefect.yaml exactly as `make deploy` does, and is stopped
by PID at the end of the session (also when a test fails).
"""

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from prefect_stack import (
    BIN,
    KEY_BLOCK,
    POOL,
    FinishedRun,
    Stack,
    base_env,
    flow_run_id_from,
    free_port,
    our_processes,
    stop,
    wait_http,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Server, work pool, Secret block, two emulators (fast, slow), deployments and a worker."""
    tmp = tmp_path_factory.mktemp("prefect-stack")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env() | {
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_CLI_WRAP_LINES": "false",
        "COLUMNS": "200",
    }
    # A key no one else has: the emulators accept only it, and no log/artifact may show it.
    api_key = f"sk-ant-test-{secrets.token_hex(12)}"
    stack = Stack(api_url, f"http://127.0.0.1:{port}", env, tmp, api_key)
    t0 = time.monotonic()

    def mark(step: str) -> None:
        stack.timeline.append((step, round(time.monotonic() - t0, 1)))

    try:
        server = stack.start("server", [str(BIN / "prefect"), "server", "start"], env)
        for name, seconds in (("fast", "1"), ("slow", "3600")):
            emu_port = free_port()
            stack.emulators[name] = f"http://127.0.0.1:{emu_port}"
            stack.start(
                f"emulator-{name}",
                [
                    str(BIN / "halfrate"),
                    "emulator",
                    f"--port={emu_port}",
                    f"--data-dir={tmp / f'emulator-{name}'}",
                    f"--processing-seconds={seconds}",
                    f"--api-key={api_key}",
                ],
                base_env(),
            )
        wait_http(f"{api_url}/health", server, stack, "server")
        mark("server healthy")
        for name, url in stack.emulators.items():
            wait_http(f"{url}/_emulator/health", stack.procs[f"emulator-{name}"], stack, name)
        stack.prefect("work-pool", "create", POOL, "--type", "process")
        mark("work pool")
        # The worker gets no API key: runs read it from the Secret block (tasks/runtime.py).
        # It sends halfrate's warnings to the runs' logs, as `make prefect-up` starts it.
        worker_env = env | {
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "halfrate",
        }
        stack.start(
            "worker",
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", "test-worker"],
            worker_env,
        )
        save_secret = "import os; from prefect.blocks.system import Secret; "
        save_secret += f"Secret(value=os.environ['TEST_KEY']).save({KEY_BLOCK!r}, overwrite=True)"
        secret = stack.start(
            "secret", [str(BIN / "python"), "-c", save_secret], env | {"TEST_KEY": api_key}
        )
        stack.prefect("--no-prompt", "deploy", "--all")
        mark("deployed")
        assert secret.wait(timeout=120) == 0, stack.log("secret")
        mark("secret saved")
        yield stack
    finally:
        print(f"\nprefect stack timeline (s): {stack.timeline}")
        worker = stack.procs.get("worker")
        if worker is not None:
            stop(worker, grace=30)
        for pid, _ in our_processes(api_url):  # flow runs left behind by a failed test
            os.kill(pid, signal.SIGKILL)
        for name, proc in stack.procs.items():
            if name != "worker":
                stop(proc, grace=15)


ERRORED_ROWS = "_u00[1-9]0$"  # u0010, u0020 ... u0090: 9 of the 693 sample rows


@pytest.fixture(scope="session")
def finished_run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    """One run of `batch-job/intents` the way docs/deploy.md runs it: CLI, --param, --watch.

    The emulator drops the answer to its first create (the run reconciles it: a halfrate
    warning in the run's logs) and errs on 9 rows every time (attempt 2 resends them; they end
    exhausted: a failures table, linked from the summary)."""
    tmp = tmp_path_factory.mktemp("run-intents")
    faults = {"lose_create_responses": 1, "errored_custom_id_pattern": ERRORED_ROWS}
    httpx.put(f"{stack.emulators['fast']}/_emulator/faults", json=faults, timeout=30)
    started = time.monotonic()
    job = "deploy-e2e"
    output = stack.prefect(
        "deployment",
        "run",
        "batch-job/intents",
        "--param",
        "job=" + json.dumps({"name": job, "max_attempts": 2}),
        "--job-variable",
        "env=" + json.dumps(stack.run_env("fast", tmp, HALFRATE_RECONCILE_WAIT="1")),
        "--watch",
        "--watch-timeout",
        "180",
        timeout=240,
    )
    stack.timeline.append(("e2e run", round(time.monotonic() - started, 1)))
    yield FinishedRun(flow_run_id_from(output), job, tmp, output)
