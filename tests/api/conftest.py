"""Fixtures for the API-side tests: the emulator over loopback, the real SDK, a small job.

Every test gets its own emulator (a real uvicorn server on 127.0.0.1, virtual clock frozen)
and a gateway whose SDK client records each HTTP request it puts on the wire, so a test can
count create attempts and retries.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from apitools import Api, Job, Sleeps, Wire, write_request_file

from halfrate.gateway import BatchGateway
from halfrate.ledger import Ledger
from halfrate.workspace import JobPaths
from halfrate_emulator import EmulatorOptions, EmulatorServer, FaultConfig


@pytest.fixture(scope="session")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One emulator with default options (clock frozen), reset before each test that uses it."""
    server = EmulatorServer(
        data_dir=tmp_path_factory.mktemp("emulator"), options=EmulatorOptions(time_scale=0)
    ).start()
    yield server
    server.stop()


@pytest.fixture
def make_api(tmp_path: Path, shared_emulator: EmulatorServer) -> Iterator[Callable[..., Api]]:
    """An emulator with the given `EmulatorOptions` fields (clock frozen by default).

    Options that only set faults reuse the shared emulator (reset, faults replaced); others
    start a dedicated server for the test.
    """
    started: list[EmulatorServer] = []
    clients: list[httpx2.Client] = []

    def start(**options: Any) -> Api:
        options.setdefault("time_scale", 0)
        if set(options) <= {"faults", "time_scale"} and options["time_scale"] == 0:
            server = shared_emulator
            server.admin.reset()
            server.admin.set_faults(FaultConfig(**options.get("faults", {})))
        else:
            server = EmulatorServer(
                data_dir=tmp_path / f"emulator{len(started)}", options=EmulatorOptions(**options)
            ).start()
            started.append(server)
        wire = Wire()
        http = httpx2.Client(event_hooks={"request": [wire.hook]})
        clients.append(http)
        client = anthropic.Anthropic(api_key="test", base_url=server.base_url, http_client=http)
        sleeps = Sleeps()
        return Api(server, client, BatchGateway(client, sleep=sleeps), wire, sleeps)

    yield start
    for http in clients:
        http.close()
    for server in started:
        server.stop()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Job]:
    """`make_job([3, 2])`: a job with one request file per size, custom_ids a1_r0, a1_r1, ..."""

    def build(sizes: list[int], attempt: int = 1, name: str = "job") -> Job:
        paths = JobPaths(tmp_path / "jobs" / name)
        paths.root.mkdir(parents=True, exist_ok=True)
        ledger = Ledger.create(paths.ledger)
        files = []
        start = 0
        for part, size in enumerate(sizes, start=1):
            ids = [f"a{attempt}_r{i}" for i in range(start, start + size)]
            files.append(write_request_file(paths, attempt, part, ids))
            start += size
        ledger.add_request_files(files)
        return Job(paths, ledger, files)

    return build
