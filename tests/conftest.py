"""Shared fixtures: no test ever sees a developer's real key, settings or data folders."""

import atexit
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from halfrate.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
# Prefect state of this test session (and of every `halfrate` it starts) lives in a folder of
# its own, never in the developer's ~/.prefect; no test reaches a developer's Prefect server.
# Set before anything imports Prefect, which reads its settings once.
TEST_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="halfrate-tests-prefect-"))
os.environ["PREFECT_HOME"] = str(TEST_PREFECT_HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILE", None)


def _quiet_interpreter_teardown() -> None:
    """With Prefect's threads alive at exit, DuckDB's extension outlives the interpreter's
    teardown and nanobind prints dozens of "leaked instance" lines about DuckDB's own types:
    not leaks of ours (the `halfrate` command skips that teardown: cli/lifetime.py)."""
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


atexit.register(_quiet_interpreter_teardown)  # registered first: runs after pytest's output
# Captured before any test cleans the environment; only tests/live may use it, and only with
# HALFRATE_LIVE=1, so a developer's key is never spent by accident.
_LIVE = os.environ.get("HALFRATE_LIVE") == "1"
LIVE_API_KEY = os.environ.get("ANTHROPIC_API_KEY") if _LIVE else None
LIVE_BASE_URL = os.environ.get("ANTHROPIC_BASE_URL") if _LIVE else None
SAMPLES = REPO / "data" / "samples"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "HALFRATE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HALFRATE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("HALFRATE_WORKDIR", str(tmp_path / "jobs"))
    monkeypatch.chdir(tmp_path)  # a stray .env or relative path never reaches the repo
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture(autouse=True, scope="session")
def _no_server_left_behind() -> Iterator[None]:
    """A test that lets `halfrate run` start the kept Prefect server must stop it: fail if one
    is still recorded at the end of the session (and stop it, so nothing outlives the tests)."""
    yield
    state = TEST_PREFECT_HOME / "halfrate-server.json"
    if state.exists():
        pid = int(json.loads(state.read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        pytest.fail(f"a test left halfrate's Prefect server running (pid {pid}); stopped it")
