"""Flow tests: a real Prefect API (test harness) and the emulator over loopback HTTP."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect API for the session; results storage isolated (prefect.md section 7)."""
    storage = tmp_path_factory.mktemp("prefect-results")
    with (
        temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(storage)}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield str(PREFECT_API_URL.value())


@contextmanager
def running_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: EmulatorOptions
) -> Iterator[EmulatorServer]:
    """An emulator on a free port, with this test's environment pointed at it."""
    with EmulatorServer(data_dir=tmp_path / "emulator", port=0, options=options) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("HALFRATE_POLL_INTERVAL", "0.2")
        monkeypatch.setenv("HALFRATE_RECONCILE_WAIT", "0.3")
        get_settings.cache_clear()
        yield server


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """Batches end half a second (virtual) after they are created."""
    options = EmulatorOptions(processing_seconds=0.5, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def write_job(tmp_path: Path, rows: int | None = None, **keys: object) -> Path:
    """A copy of the demo job (optionally its first `rows` rows) with keys overridden."""
    import yaml

    source = tmp_path / "intents.csv"
    lines = (SAMPLES / "intents.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    source.write_text("".join(lines if rows is None else lines[: rows + 1]), encoding="utf-8")
    job = yaml.safe_load((SAMPLES / "intents.yaml").read_text(encoding="utf-8"))
    job |= {"source": str(source), **keys}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def subprocess_env(api_url: str) -> dict[str, str]:
    """The environment for a `halfrate` child process that shares this test's Prefect API."""
    env = dict(os.environ)
    env |= {"PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return env


def halfrate_bin() -> str:
    found = shutil.which("halfrate", path=str(Path(os.sys.executable).parent))
    assert found, "the halfrate console script is not installed in this venv"
    return found
