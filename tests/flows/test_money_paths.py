"""Issue 7 end to end: the paths that paid twice, paid after a cancel, or stopped dead.

Each test runs the real flow (Prefect test harness) against the emulator over loopback HTTP.
"""

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import anthropic
import duckdb
import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.batch_job import batch_job
from halfrate.ledger import BatchStatus, Ledger
from halfrate.preflight import PreflightError
from halfrate.settings import get_settings
from halfrate.submit import SpendLimitError
from halfrate_emulator import EmulatorOptions, EmulatorServer, FaultConfig, HttpFault
from tests.flows.conftest import halfrate_bin, running_emulator, subprocess_env, write_job

pytestmark = pytest.mark.slow
JOB = "intents-demo"


def creates(server: EmulatorServer) -> int:
    """Create requests that reached the emulator (served or refused)."""
    return sum(
        1
        for r in server.admin.requests()
        if r["method"] == "POST" and r["path"] == "/v1/messages/batches"
    )


def sent_ids(server: EmulatorServer, prefix: str = "a") -> Counter[str]:
    return Counter(
        c
        for e in server.admin.audit(custom_ids=True)
        for c in e["custom_ids"]
        if c.startswith(prefix)
    )


def outcomes() -> list[tuple[object, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(
            "select final_state, reason, count(*) from row_outcomes where job_name = $j "
            "group by all order by all",
            {"j": JOB},
        ).fetchall()


def ledger() -> Ledger:
    return Ledger(get_settings().workdir / JOB / "ledger.sqlite")


# -- item 2 ------------------------------------------------------------------------------------


def test_the_spend_limit_stops_the_run_at_its_first_create(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    spend = HttpFault(
        endpoint="create", status=429, count=100, error_code="enforced_spend_limit_reached"
    )
    emulator.admin.set_faults(FaultConfig(http=(spend,)))
    with pytest.raises(SpendLimitError, match="spend limit"):
        batch_job(job_file=str(write_job(tmp_path, rows=10)))
    assert creates(emulator) == 1  # not retried by the SDK, the submit step or Prefect
    assert emulator.admin.audit() == []


# -- item 3 ------------------------------------------------------------------------------------


def test_a_wrong_adoption_is_released_and_the_job_completes(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # Another client made a 1-request batch; our prime create then gets a bare 502 (nothing
    # made, outcome unknown), so reconciliation adopts theirs.
    other = anthropic.Anthropic(api_key="someone-else", base_url=emulator.base_url)
    params = {
        "model": "claude-sonnet-5",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x"}],
    }
    theirs = other.messages.batches.create(requests=[{"custom_id": "theirs", "params": params}]).id
    bare = HttpFault(endpoint="create", status=502, count=1, bare=True)
    emulator.admin.set_faults(FaultConfig(http=(bare,)))

    summary = batch_job(job_file=str(write_job(tmp_path, rows=30)))

    assert summary.final_states == {"succeeded": 30}
    ids = sent_ids(emulator, "a1_")
    assert len(ids) == 30 and set(ids.values()) == {1}
    assert ledger().foreign_batch_ids() == {theirs}
    assert other.messages.batches.retrieve(theirs).request_counts.canceled == 0
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        assert con.execute(
            "select count(*) from batches where batch_id = ?", [theirs]
        ).fetchone() == (0,)


# -- item 5 ------------------------------------------------------------------------------------


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Batches take an hour of virtual time: a run sits in await until they are canceled."""
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def _wait(condition, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


def _statuses() -> list[BatchStatus | None]:
    path = get_settings().workdir / JOB / "ledger.sqlite"
    return [r.status for r in Ledger(path).records()] if path.exists() else []


def test_a_user_cancel_while_the_run_waits_is_final_for_that_run(
    prefect_api: str, slow_emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=20, prime_cache=False, max_attempts=3)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [halfrate_bin(), "run", str(job)],
            env=subprocess_env(prefect_api),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: BatchStatus.submitted in _statuses(), "a submitted batch", proc, log)
        time.sleep(1)  # it is polling in the await step
        result = CliRunner().invoke(app, ["cancel", JOB])
        assert result.exit_code == 0 and "canceled 1 batch" in result.output, result.output
        assert proc.wait(timeout=120) == 5, log.read_text()  # README: exit codes
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "canceled" in output and "canceled by the user" in output, output
    assert len(slow_emulator.admin.audit()) == 1  # no attempt-2 batch for the canceled rows
    assert outcomes() == [("canceled", "canceled by the user", 20)]
    assert _flow_run_states(prefect_api)[-1] == "CANCELLED"

    # Only an explicit new run resumes them (the clock moves so its batch ends).
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.3):
            slow_emulator.admin.advance_clock(3600)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        summary = batch_job(job_file=str(job))
    finally:
        done.set()
        ticker.join()
    assert summary.final_states == {"succeeded": 20}
    assert len(slow_emulator.admin.audit()) == 2
    assert sent_ids(slow_emulator, "a2_") == Counter({f"a2_u{i:04d}": 1 for i in range(1, 21)})
    assert ledger().cancel_requested() is None


def _flow_run_states(api_url: str) -> list[str]:
    import httpx

    runs = httpx.post(
        f"{api_url}/flow_runs/filter", json={"sort": "START_TIME_ASC"}, timeout=30
    ).json()
    return [r["state_type"] for r in runs if r["parameters"].get("job_file")]


# -- item 6 ------------------------------------------------------------------------------------


def test_a_413_from_create_is_split_and_a_request_too_large_alone_ends_failed(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EmulatorOptions(processing_seconds=0.3, max_batch_bytes=30_000)
    job = write_job(tmp_path, rows=24, prime_cache=False)
    source = tmp_path / "intents.csv"
    lines = source.read_text(encoding="utf-8").splitlines()
    lines[5] = "big1," + "play " * 8000 + ",play_music"  # 40 KB: too large even alone
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with running_emulator(tmp_path, monkeypatch, options) as server:
        summary = batch_job(job_file=str(job))
        audit = server.admin.audit(custom_ids=True)
    assert summary.final_states == {"succeeded": 23, "failed": 1}
    ids = Counter(c for e in audit for c in e["custom_ids"])
    assert len(ids) == 23 and set(ids.values()) == {1}
    assert all(e["bytes"] <= 30_000 for e in audit) and len(audit) > 1
    [(reason,)] = [(r,) for state, r, _ in outcomes() if state == "failed"]
    assert "too large even alone" in str(reason) and "413" in str(reason)
    statuses = Counter(r.status for r in ledger().records())
    assert statuses[BatchStatus.split_up] >= 1 and statuses[BatchStatus.failed] == 1


# -- preflight ---------------------------------------------------------------------------------


def test_a_corrupt_warehouse_is_found_before_anything_is_paid(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    warehouse = get_settings().warehouse
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    warehouse.write_bytes(b"this is not a DuckDB file" * 1000)
    with pytest.raises(PreflightError, match=rf"{warehouse}.*cannot be opened.*nothing was sent"):
        batch_job(job_file=str(write_job(tmp_path, rows=10)))
    assert emulator.admin.audit() == []  # not even the prime batch


def test_a_refused_key_is_found_before_anything_is_counted_or_paid(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EmulatorOptions(api_key="the-right-key")
    with running_emulator(tmp_path, monkeypatch, options) as server:
        with pytest.raises(PreflightError, match="401 authentication_error"):
            batch_job(job_file=str(write_job(tmp_path, rows=10)))
        paths = [r["path"] for r in server.admin.requests() if r["path"].startswith("/v1/")]
    assert paths == ["/v1/messages/batches"]  # one list call, no count_tokens, no create
