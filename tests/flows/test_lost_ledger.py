"""Item 4: deleting the job folder (or the whole workdir) mid-job never pays twice.

The running step stops instead of starting an empty ledger; a rerun finds the job's batches in
the warehouse (recorded as soon as they were created) and refuses to send; `halfrate recover`
rebuilds the ledger from the warehouse and the API, and the job then completes with every row
sent once.
"""

import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.batch_job import batch_job
from halfrate.ledger import BatchStatus, Ledger
from halfrate.preflight import LedgerLostError
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer
from tests.flows.conftest import halfrate_bin, running_emulator, subprocess_env, write_job

pytestmark = pytest.mark.slow
ROWS = 40
JOB = "intents-demo"


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def _statuses() -> list[BatchStatus | None]:
    path = get_settings().workdir / JOB / "ledger.sqlite"
    try:
        return [r.status for r in Ledger(path).records()]
    except Exception:
        return []


def _run_with_the_clock_moving(server: EmulatorServer, job: Path) -> object:
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.3):
            server.admin.advance_clock(3600)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        return batch_job(job_file=str(job))
    finally:
        done.set()
        ticker.join()


@pytest.mark.parametrize("prime", [False, True], ids=["no-prime", "prime"])
def test_deleting_the_workdir_mid_wait_never_pays_twice(
    prefect_api: str, slow_emulator: EmulatorServer, tmp_path: Path, prime: bool
) -> None:
    job = write_job(tmp_path, rows=ROWS, prime_cache=prime)
    workdir = get_settings().workdir
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [halfrate_bin(), "run", str(job)],
            env=subprocess_env(prefect_api),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        sent = 2 if prime else 1  # with a prime batch: delete while the main batch waits
        while (
            sum(s is not None for s in _statuses()) < sent
            or _statuses()[-1] is not BatchStatus.submitted
        ):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            if prime and BatchStatus.submitted in _statuses()[:1]:
                slow_emulator.admin.advance_clock(3600)  # let the prime batch end
            time.sleep(0.1)
        time.sleep(1)  # polling in the await step
        _delete_while_in_use(workdir)
        assert proc.wait(timeout=120) == 2, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "ledger" in output and "is missing" in output and f"halfrate recover {JOB}" in output
    assert not (workdir / JOB / "ledger.sqlite").exists()  # nothing recreated it
    made = len(slow_emulator.admin.audit())
    assert made == (2 if prime else 1)

    with pytest.raises(LedgerLostError, match=f"halfrate recover {JOB}"):
        batch_job(job_file=str(job))
    assert len(slow_emulator.admin.audit()) == made  # the rerun refused to send

    result = CliRunner().invoke(app, ["recover", JOB])
    assert result.exit_code == 0, result.output
    assert f"{made} batch(es) attached" in result.output

    summary = _run_with_the_clock_moving(slow_emulator, job)
    assert summary.final_states == {"succeeded": ROWS}  # type: ignore[attr-defined]
    audit = slow_emulator.admin.audit(custom_ids=True)
    ids = Counter(c for e in audit for c in e["custom_ids"])
    assert len(ids) == ROWS and set(ids.values()) == {1}  # every row sent once, in all
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        batches = con.execute("select count(*) from batches where job_name = ?", [JOB]).fetchone()
    assert batches == (len(audit),)  # the bill and the warehouse agree


def test_recover_refuses_what_it_cannot_rebuild(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["recover", "nope"])
    assert result.exit_code == 2 and "knows no batch of job 'nope'" in result.output

    options = EmulatorOptions(processing_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options):
        batch_job(job_file=str(write_job(tmp_path, rows=5, prime_cache=False)))
        result = runner.invoke(app, ["recover", JOB])
    assert result.exit_code == 2 and "nothing to recover" in result.output


def _delete_while_in_use(folder: Path) -> None:
    """`rm -rf` under a live process: a poll may add a SQLite journal beside the ledger it
    still has open while the folder is being removed, so remove until it is gone."""
    for _ in range(50):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.05)
    shutil.rmtree(folder)  # still there: fail with the reason
