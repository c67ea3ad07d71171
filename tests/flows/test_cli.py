"""The CLI as a user meets it: bad inputs get a clear error naming what to fix."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from halfrate_emulator import EmulatorServer, FaultConfig, HttpFault
from tests.flows.conftest import write_job

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        (None, "not found"),
        ("", "empty"),
        ("id,body\n1,hello\n", "text"),
    ],
    ids=["missing-file", "empty-file", "missing-column"],
)
def test_unusable_sources_are_refused_with_the_file_named(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path, csv: str | None, expected: str
) -> None:
    job = write_job(tmp_path)
    source = tmp_path / "intents.csv"
    if csv is None:
        source.unlink()
    else:
        source.write_text(csv)
    code, out = run("run", str(job))
    assert code == 2
    assert expected in out.lower()
    assert "intents.csv" in out
    assert emulator.admin.audit() == []  # nothing was submitted


def test_duplicate_ids_and_empty_text_are_quarantined_not_dropped(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path)
    (tmp_path / "intents.csv").write_text(
        "id,text,intent\n"
        "a,Play some jazz,play_music\n"
        "b,   ,get_weather\n"
        "c,Will it rain in Paris,get_weather\n"
        "c,Book a table for two,book_restaurant\n"
        "d,Add this song to my road trip playlist,add_to_playlist\n"
    )
    code, out = run("run", str(job))
    assert code == 3, out  # some rows did not succeed (README: exit codes)
    assert "2 succeeded, 3 quarantined: see the failures table" in out
    code, out = run("sql", "select row_id, final_state, reason from row_outcomes order by all")
    assert code == 0, out
    assert out.count("quarantined") == 3  # b (empty text) and both c rows (duplicate id)
    assert "duplicate" in out.lower() and "empty" in out.lower()
    assert out.count("succeeded") == 2
    code, out = run("sql", "--csv", "select row_id, final_state from row_outcomes order by row_id")
    assert code == 0
    assert out.splitlines() == [
        "row_id,final_state",
        "a,succeeded",
        "b,quarantined",
        "c,quarantined",
        "c,quarantined",
        "d,succeeded",
    ]


def test_malformed_job_file_and_bad_override(prefect_api: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: [unclosed\n")
    code, out = run("run", str(bad))
    assert code == 2 and "bad.yaml" in out and "YAML" in out

    job = write_job(tmp_path)
    code, out = run("run", str(job), "--set", "max_tokens=-3")
    assert code == 2 and "max_tokens" in out

    code, out = run("run", str(job), "--set", "colour=blue")
    assert code == 2 and "colour" in out


def test_sql_on_a_missing_warehouse_and_bad_sql(tmp_path: Path) -> None:
    code, out = run("sql", "select 1")
    assert code == 2 and "no warehouse" in out
    code, out = run("status", "nope")
    assert code == 2 and "no job named 'nope'" in out
    code, out = run("adopt", "nope", "requests/a1/part-0001.jsonl", "msgbatch_01x")
    assert code == 2 and "no job named 'nope'" in out


def test_estimate_prices_the_job_and_the_budget_cap_stops_submission(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=30)
    code, out = run("estimate", str(job))
    assert code == 0, out
    assert "at batch prices" in out and "expected" in out and "prefix" in out
    assert "priming batch: sent first" in out
    assert emulator.admin.audit() == []  # estimating sends nothing

    code, out = run("run", str(job), "--set", "max_cost_usd=0.000001")
    assert code == 2
    assert "max_cost_usd" in out and "nothing was submitted" in out
    assert "above max_cost_usd $0.0000010" in out  # not "$0.00 ... above $0.00"
    assert emulator.admin.audit() == []


def test_count_tokens_down_gives_a_rough_estimate_and_money_is_shown_rounded(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="count_tokens", status=500, count=1000),))
    )
    job = write_job(tmp_path, rows=20)
    code, out = run("estimate", str(job))
    assert code == 0, out
    assert "rough estimate" in out and "count_tokens failed" in out

    code, out = run("run", str(job))  # no budget cap: a rough estimate does not block it
    assert code == 0, out
    code, out = run("sql", "select job_name, batch_cost_usd, realtime_cost_usd from job_costs")
    assert code == 0, out
    assert re.search(r"\$0\.0\d{3}\b", out), out  # four decimals under a dollar
    code, out = run("sql", "--csv", "select batch_cost_usd from job_costs")
    assert code == 0 and re.fullmatch(r"batch_cost_usd\n0\.\d{12}\n", out), out  # exact
