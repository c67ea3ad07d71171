"""The anthropic SDK's own generated batch tests, run against the emulator in fixture mode.

The tests ship in the anthropic 2.10.0 sdist (not the wheel). They are fetched once with pip into
`.sdk/` (git-ignored), checked against a pinned sha256, and run in a subprocess with
`TEST_API_BASE_URL` pointing at an emulator started with `fixture_mode=True` (any batch id exists,
cancel and delete succeed), as reference section 11 describes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from halfrate_emulator import EmulatorOptions, EmulatorServer

SDK_VERSION = "2.10.0"
SDIST_SHA256 = "6f3ffbdc6eb0a09a197be2eabdc62b8395a13d692710b8cdfa0393a80b355585"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".sdk"
SDIST = CACHE / f"anthropic-{SDK_VERSION}.tar.gz"
TEST_FILES = [
    "tests/api_resources/messages/test_batches.py",
    "tests/api_resources/beta/messages/test_batches.py",
]
MIN_PASSED = 250  # 2 files x 126 parametrised cases (sync/async, loose/strict, aiohttp)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pip_commands() -> list[list[str]]:
    """Ways to run pip here: this interpreter, the repo's bootstrap tools, or the PATH."""
    commands = []
    if importlib.util.find_spec("pip") is not None:
        commands.append([sys.executable, "-m", "pip"])
    for candidate in (REPO / ".tools" / "bin" / "pip", shutil.which("pip3"), shutil.which("pip")):
        if candidate and Path(candidate).exists():
            commands.append([str(candidate)])
    return commands


def _download() -> None:
    CACHE.mkdir(exist_ok=True)
    args = ["download", "--no-deps", "--no-binary", ":all:", f"anthropic=={SDK_VERSION}"]
    failures = []
    for pip in _pip_commands():
        done = subprocess.run(
            [*pip, *args, "-d", str(CACHE), "-q"], capture_output=True, text=True, timeout=600
        )
        if done.returncode == 0 and SDIST.exists():
            return
        failures.append(f"{' '.join(pip)}: {done.stderr.strip()[-300:]}")
    pytest.skip(f"cannot download the anthropic {SDK_VERSION} sdist (no network?): {failures}")


def _unpacked_sdist() -> Path:
    if not SDIST.exists() or _sha256(SDIST) != SDIST_SHA256:
        SDIST.unlink(missing_ok=True)
        _download()
    assert _sha256(SDIST) == SDIST_SHA256, "the downloaded sdist does not match the pinned sha256"
    root = CACHE / f"anthropic-{SDK_VERSION}"
    if not (root / TEST_FILES[0]).exists():
        with tarfile.open(SDIST) as archive:
            archive.extractall(CACHE, filter="data")
    return root


def _count(summary: str, word: str) -> int:
    found = re.search(rf"(\d+) {word}", summary)
    return int(found.group(1)) if found else 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sdk_generated_batch_tests_pass_against_the_emulator(tmp_path: Path) -> None:
    root = _unpacked_sdist()
    options = EmulatorOptions(fixture_mode=True, time_scale=0.0)
    with EmulatorServer(tmp_path / "emulator", options=options) as server:
        command = [sys.executable, "-m", "pytest", *TEST_FILES, "-p", "tests._alias_httpx"]
        command += ["-n", "0", "-o", "addopts=", "-q", "-p", "no:cacheprovider"]
        env = os.environ | {"TEST_API_BASE_URL": server.base_url}
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    passed, failed = _count(summary, "passed"), _count(summary, "failed")
    errors = _count(summary, "error")
    print(
        f"anthropic {SDK_VERSION} generated batch tests: {passed} passed, {failed} failed, {errors} errors"
    )
    assert failed == 0 and errors == 0, done.stdout[-5000:]
    assert passed >= MIN_PASSED, summary
