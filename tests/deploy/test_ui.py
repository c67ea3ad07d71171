"""The Prefect UI shows a finished run's summary artifact (headless Chromium, no internet)."""

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prefect_stack import REPO, FinishedRun, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OUTPUT = REPO / "tests" / "output"  # git-ignored; CI keeps the screenshot as a test output
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--virtual-time-budget=20000",  # lets the single-page app fetch its data first
]


def chromium(url: str, profile: Path, *action: str) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian `chromium` is not installed (.ci/run installs it with apt-get)")
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_ui_shows_the_summary_artifact(
    stack: Stack, finished_run: FinishedRun, tmp_path: Path
) -> None:
    url = f"{stack.ui_url}/v2/runs/flow-run/{finished_run.id}?tab=Artifacts"
    key = f"halfrate-{finished_run.job}-summary"
    dom = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    assert key in dom, f"{key} not on {url}"
    assert "Completed" in dom

    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "prefect-ui-run-artifacts.png"
    shot.unlink(missing_ok=True)
    chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000

    # The artifact's own page renders the summary's Markdown.
    (artifact,) = stack.api("POST", "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}})
    page_url = f"{stack.ui_url}/v2/artifacts/artifact/{artifact['id']}"
    text = visible_text(chromium(page_url, tmp_path / "profile-artifact", "--dump-dom"))
    assert f"halfrate job {finished_run.job}" in text
    assert "693 rows" in text and "Cost at batch prices" in text and "cache hit rate" in text
    summary_shot = f"--screenshot={OUTPUT / 'prefect-ui-summary.png'}"
    chromium(page_url, tmp_path / "profile-shot2", summary_shot)


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
