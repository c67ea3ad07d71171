"""Fixtures for the emulator tests: real servers on loopback, real anthropic 2.10 clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from halfrate_emulator import EmulatorOptions, EmulatorServer

MakeServer = Callable[..., EmulatorServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Start emulators (frozen clock unless told otherwise) that stop at the end of the test."""
    started: list[EmulatorServer] = []

    def make(data_dir: Path | None = None, **options: Any) -> EmulatorServer:
        options.setdefault("time_scale", 0.0)
        options.setdefault("processing_seconds", 60.0)
        server = EmulatorServer(
            data_dir or tmp_path / "emulator", options=EmulatorOptions(**options)
        )
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One default emulator for the whole session (reset before each test that uses it)."""
    options = EmulatorOptions(time_scale=0.0, processing_seconds=60.0)
    with EmulatorServer(tmp_path_factory.mktemp("shared-emulator"), options=options) as server:
        yield server


@pytest.fixture
def server(shared_server: EmulatorServer) -> EmulatorServer:
    """A default emulator with no state: frozen virtual clock, batches take 60 virtual seconds."""
    shared_server.admin.reset()
    return shared_server


@pytest.fixture
def client(server: EmulatorServer) -> anthropic.Anthropic:
    """A strict client (`_strict_response_validation=True`) without retries."""
    return anthropic.Anthropic(
        api_key="test", base_url=server.base_url, max_retries=0, _strict_response_validation=True
    )
