"""Exactly-once under crashes: SIGKILL the flow process mid-step, rerun, audit the creates."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flows.batch_job import batch_job
from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer
from halfrate_emulator.options import FaultConfig
from tests.flows.conftest import halfrate_bin, running_emulator, subprocess_env, write_job

pytestmark = pytest.mark.slow
ROWS = 60


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """Batches take an hour of virtual time, so a flow sits in await until the clock moves."""
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def start_run(job: Path, api_url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [halfrate_bin(), "run", str(job)],
            env=subprocess_env(api_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes all of it
        )


def wait_for(
    condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"flow process exited ({proc.returncode}) before {what}:\n{log.read_text()}"
            )
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def ledger_statuses() -> list[BatchStatus | None]:
    path = get_settings().workdir / "intents-demo" / "ledger.sqlite"
    return [r.status for r in Ledger(path).records()] if path.exists() else []


def assert_each_row_submitted_once_and_done(server: EmulatorServer, creates: int) -> None:
    audit = server.admin.audit(custom_ids=True)
    assert len(audit) == creates
    ids = [cid for create in audit for cid in create["custom_ids"]]
    assert len(ids) == len(set(ids)) == ROWS


def test_sigkill_during_await_then_rerun_does_not_pay_twice(
    prefect_api: str, slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=ROWS, prime_cache=False)
    log = tmp_path / "run1.log"
    proc = start_run(job, prefect_api, log)
    wait_for(lambda: BatchStatus.submitted in ledger_statuses(), "a submitted batch", proc, log)
    time.sleep(1)  # let it poll a few times: it is in the await step
    kill(proc)

    slow_emulator.admin.advance_clock(3600)
    summary = batch_job(job_file=str(job))  # the rerun resumes the wait, then loads
    assert summary.final_states == {"succeeded": ROWS}
    assert_each_row_submitted_once_and_done(slow_emulator, creates=1)


def test_sigkill_while_a_create_is_in_flight_then_rerun_reconciles(
    prefect_api: str, slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    # The server commits the batch but holds the response: the flow dies not knowing its id.
    slow_emulator.admin.set_faults(FaultConfig(stall_create_responses=1, stall_seconds=60))
    job = write_job(tmp_path, rows=ROWS, prime_cache=False)
    log = tmp_path / "run1.log"
    proc = start_run(job, prefect_api, log)
    wait_for(lambda: len(slow_emulator.admin.audit()) == 1, "the create to commit", proc, log)
    assert ledger_statuses() == [BatchStatus.intent]  # intent recorded, batch id never received
    kill(proc)

    slow_emulator.admin.clear_faults()
    slow_emulator.admin.advance_clock(3600)
    summary = batch_job(job_file=str(job))
    assert summary.final_states == {"succeeded": ROWS}
    assert_each_row_submitted_once_and_done(slow_emulator, creates=1)


def test_lost_create_response_is_reconciled_in_the_same_run(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(FaultConfig(lose_create_responses=1))
    summary = batch_job(job_file=str(write_job(tmp_path, rows=ROWS, prime_cache=False)))
    assert summary.final_states == {"succeeded": ROWS}
    assert_each_row_submitted_once_and_done(emulator, creates=1)
