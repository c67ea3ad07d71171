"""A user (another process) holding the warehouse must not crash a job or lose its rows."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.batch_job import batch_job
from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer, FaultConfig
from tests.flows.conftest import write_job

pytestmark = pytest.mark.slow

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # a writer: DuckDB allows one writing process per file
con.execute("create table if not exists scratch (x int)")
print("holding", flush=True)
sys.stdin.read()                   # until the test closes our stdin
"""


def test_job_completes_with_results_staged_then_loads_when_the_warehouse_is_free(
    prefect_api: str,
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HALFRATE_LOAD_RETRY_SECONDS", "1")
    get_settings.cache_clear()
    warehouse = get_settings().warehouse
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        summary = batch_job(job_file=str(write_job(tmp_path, rows=25, prime_cache=False)))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)

    assert summary.staged_not_loaded == 1
    assert summary.note is not None and "halfrate load intents-demo" in summary.note
    ledger = Ledger(get_settings().workdir / "intents-demo" / "ledger.sqlite")
    assert [r.status for r in ledger.records()] == [BatchStatus.downloaded]

    result = CliRunner().invoke(app, ["load", "intents-demo"])
    assert result.exit_code == 0, result.output
    assert [r.status for r in ledger.records()] == [BatchStatus.loaded]
    result = CliRunner().invoke(
        app, ["sql", "select final_state, count(*) as n from row_outcomes group by all"]
    )
    assert "succeeded" in result.output and "25" in result.output


def test_a_retry_is_planned_and_sent_while_the_warehouse_stays_busy(
    prefect_api: str,
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loads are deferred, yet the rows attempt 1 lost are asked again: the retry plan
    reads the retry outcomes parsed from the raw results, never the warehouse."""
    emulator.admin.set_faults(FaultConfig(errored_custom_id_pattern=r"^a1_u00(0[1-5])$"))
    monkeypatch.setenv("HALFRATE_LOAD_RETRY_SECONDS", "1")
    get_settings.cache_clear()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(get_settings().warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        summary = batch_job(job_file=str(write_job(tmp_path, rows=25, prime_cache=False)))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)

    assert summary.staged_not_loaded == 2  # both attempts' batches wait for the warehouse
    [_, second] = emulator.admin.audit(custom_ids=True)
    assert sorted(second["custom_ids"]) == [f"a2_u000{i}" for i in range(1, 6)]
    result = CliRunner().invoke(app, ["load", "intents-demo"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, ["sql", "--csv", "select final_state, count(*) as n from row_outcomes group by all"]
    )
    assert result.output.splitlines()[1:] == ["succeeded,25"]
