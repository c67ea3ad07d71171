"""Which endpoint a run talked to: the emulator says so when asked, nothing else does."""

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from halfrate.endpoint import is_emulator
from halfrate_emulator import EmulatorOptions, EmulatorServer


def test_the_emulator_is_recognised(shared_emulator: EmulatorServer) -> None:
    assert is_emulator(shared_emulator.base_url)
    assert is_emulator(shared_emulator.base_url + "/")


def test_an_emulator_with_an_admin_token_is_recognised_too(tmp_path: Path) -> None:
    options = EmulatorOptions(admin_token="secret")
    with EmulatorServer(data_dir=tmp_path, port=0, options=options) as server:
        assert is_emulator(server.base_url)


@pytest.fixture
def not_the_emulator() -> Iterator[str]:
    """An HTTP server that answers 404 to everything (a proxy, the real API)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_anything_else_is_not_the_emulator(not_the_emulator: str) -> None:
    assert not is_emulator(None)  # the default endpoint: the real API, nothing asked
    assert not is_emulator(not_the_emulator)  # answers, but not as the emulator
    assert not is_emulator("http://127.0.0.1:9", timeout=1)  # nothing listens
