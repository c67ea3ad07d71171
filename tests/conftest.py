"""Shared fixtures: no test ever sees a developer's real key, settings or data folders."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from halfrate.settings import get_settings

REPO = Path(__file__).resolve().parents[1]
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
