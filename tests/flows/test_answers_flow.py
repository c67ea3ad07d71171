"""Issue 8 end to end: bad rows, oversized requests, partial failure, a refused key, and
`--emulator`, through the real flow against the emulator (and the CLI where it speaks)."""

import os
import subprocess
from pathlib import Path

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from cli.app import app
from flows.batch_job import batch_job
from halfrate.config import JobConfigError
from halfrate.errors import APIError, ErrorKind
from halfrate.estimate import BudgetExceededError
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer, FaultConfig, HttpFault
from tests.flows.conftest import halfrate_bin, subprocess_env, write_job

pytestmark = pytest.mark.slow
runner = CliRunner()


def warehouse(query: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(query).fetchall()


def first_rows_with(tmp_path: Path, rows: int, extra: str) -> Path:
    """The demo job over its first `rows` rows, plus `extra` CSV lines."""
    job = write_job(tmp_path, rows=rows)
    with open(tmp_path / "intents.csv", "a", encoding="utf-8") as fh:
        fh.write(extra)
    return job


def test_rows_without_id_end_quarantined_and_keep_their_row_number(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Empty, null and blank ids used to crash `report` on every rerun, after paying."""
    job = first_rows_with(
        tmp_path, 10, ',null id,play_music\n"",empty id,play_music\n"   ",blank id,play_music\n'
    )
    for run in range(2):  # the rerun reports the same, without sending anything
        summary = batch_job(job_file=str(job))
        assert summary.final_states == {"succeeded": 10, "quarantined": 3}, run
        assert [(f.row_number, f.row_id) for f in summary.failures] == [
            (11, None),
            (12, ""),
            (13, "   "),
        ]
        assert all(f.reason and f.reason.startswith("missing id") for f in summary.failures)
    assert len(emulator.admin.audit()) == 2  # prime + main, once
    assert warehouse(
        "select row_number, row_id from row_outcomes where final_state = 'quarantined' "
        "order by row_number"
    ) == [(11, None), (12, ""), (13, "   ")]
    assert warehouse("select row_number from quarantine order by 1") == [(11,), (12,), (13,)]
    with httpx.Client(base_url=prefect_api) as http:
        artifacts = http.post(
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": ["halfrate-intents-demo-failures"]}}},
        ).json()
    assert artifacts and "'row_number': 11" in repr(artifacts[0]["data"]).replace('"', "'")


def test_a_request_too_large_for_a_batch_is_quarantined_and_the_rest_sent(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALFRATE_MAX_BATCH_BYTES", "30000")
    get_settings.cache_clear()
    job = first_rows_with(tmp_path, 20, "huge-row," + "word " * 8_000 + ",play_music\n")
    summary = batch_job(job_file=str(job))
    assert summary.final_states == {"succeeded": 20, "quarantined": 1}
    [failure] = summary.failures
    assert (failure.row_number, failure.row_id) == (21, "huge-row")
    assert failure.reason is not None
    assert failure.reason.startswith("request too large: ")
    assert "over HALFRATE_MAX_BATCH_BYTES=30,000" in failure.reason
    sent = {cid for create in emulator.admin.audit(custom_ids=True) for cid in create["custom_ids"]}
    assert len(sent) == 20 and "a1_huge-row" not in sent


def test_partial_failure_completes_with_a_message_and_a_distinct_exit_code(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(FaultConfig(errored_custom_id_pattern=r"_u000[23]$"))
    job = first_rows_with(tmp_path, 12, ",no id,play_music\n")
    state = batch_job(job_file=str(job), job={"max_attempts": 2}, return_state=True)
    assert state.is_completed()
    assert state.message == "10 succeeded, 2 exhausted, 1 quarantined: see the failures table"

    result = runner.invoke(app, ["run", str(job), "--set", "max_attempts=2"])  # a rerun
    assert result.exit_code == 3, result.output
    assert "10 succeeded, 2 exhausted, 1 quarantined" in result.output
    assert "u0002" in result.output and "(no id)" in result.output
    # an emulator named by ANTHROPIC_BASE_URL (not --emulator) is said too: the summary probed it
    assert "Ran on the built-in emulator, a deterministic stand-in" in result.output


def test_a_refused_key_on_count_tokens_stops_the_run_without_retries(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """It used to be retried, then priced roughly; one 401 is enough to know."""
    emulator.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="count_tokens", status=401, count=1),))
    )
    with pytest.raises(APIError) as caught:
        batch_job(job_file=str(write_job(tmp_path, rows=5)))
    assert caught.value.kind is ErrorKind.auth
    assert emulator.admin.audit() == []  # nothing was sent
    # a retry would have found the fault used up and gone on: it was not retried


def test_actionable_errors_in_the_flow_print_no_traceback(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=20, max_cost_usd=0.000001)
    done = subprocess.run(
        [halfrate_bin(), "run", str(job)],
        env=subprocess_env(prefect_api),
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "above max_cost_usd $0.0000010; nothing was submitted" in out
    assert "Traceback" not in out
    assert "Retry 1/" not in out  # the estimate is not retried
    assert out.rstrip().splitlines()[-1].startswith("error: job 'intents-demo': expected cost")
    assert emulator.admin.audit() == []


def test_run_on_the_emulator_needs_no_key(prefect_api: str, tmp_path: Path) -> None:
    job = write_job(tmp_path, rows=8)
    result = runner.invoke(app, ["run", str(job), "--emulator"])
    assert result.exit_code == 0, result.output
    assert "--emulator: using the built-in emulator at http://127.0.0.1:" in result.output
    assert "Ran on the built-in emulator, a deterministic stand-in" in result.output
    assert "succeeded 8" in result.output
    assert not any(k.startswith("ANTHROPIC_") for k in os.environ)  # restored
    result = runner.invoke(app, ["run", str(job), "--emulator"])  # resumes on the emulator
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (APIError(ErrorKind.auth, "results", "invalid x-api-key", status=401), False),
        (APIError(ErrorKind.spend_limit, "create", "limit", status=429), False),
        (JobConfigError("job.yaml: invalid job configuration"), False),
        (BudgetExceededError("above max_cost_usd"), False),
        (APIError(ErrorKind.busy, "results", "overloaded", status=529), True),
        (OSError("connection reset"), True),
    ],
)
def test_tasks_never_retry_what_needs_a_person(error: Exception, retried: bool) -> None:
    """estimate-cost and download retry passing faults, never a bad job or a refused key."""
    from prefect.states import Failed

    from tasks.download import download
    from tasks.estimate import estimate
    from tasks.retrying import retry_unless_actionable

    assert download.retry_condition_fn is estimate.retry_condition_fn is retry_unless_actionable
    assert retry_unless_actionable(download, None, Failed(data=error)) is retried
