"""Issue 11 item 2, end to end on the emulator: the pilot runs as part of the job, its rows are
paid once, its projection lands near the actual cost, and a budget stops before the rest."""

import random
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from flows.batch_job import batch_job
from flows.pilot import pilot_job
from halfrate.pilot_report import PilotReport
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer
from tests.flows.conftest import SAMPLES, write_job

pytestmark = pytest.mark.slow
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def sent(server: EmulatorServer) -> Counter[str]:
    """Every custom_id the emulator received, with how often (the audit of every create)."""
    return Counter(c for e in server.admin.audit(custom_ids=True) for c in e["custom_ids"])


def query(sql: str, **params: object) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def varied_job(tmp_path: Path, rows: int, **keys: object) -> Path:
    """A generate job whose answers vary a lot in length from row to row: the emulator echoes
    up to 24 words of the question, and the questions have 1 to 40 words of 2 to 14 letters
    (so an answer's length follows its question's only in part)."""
    rng = random.Random(11)
    lines = ["id,question"]
    for i in range(rows):
        words = ["".join(rng.choices("abcdefghij", k=rng.randint(2, 14))) for _ in range(40)]
        lines.append(f"q{i:04d},{' '.join(words[: rng.choice([1, 2, 3, 5, 8, 13, 24, 40])])}")
    (tmp_path / "questions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = yaml.safe_load((SAMPLES / "trivia-answers.yaml").read_text(encoding="utf-8"))
    job |= {"name": "varied", "source": str(tmp_path / "questions.csv"), "prompt": "{question}"}
    path = tmp_path / "varied.yaml"
    path.write_text(yaml.safe_dump(job | {"max_tokens": 400, **keys}), encoding="utf-8")
    return path


def test_a_pilot_then_the_full_job_pays_each_row_once(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=200)
    report = pilot_job(job_file=str(job), rows=25)
    assert isinstance(report, PilotReport)
    assert (report.pilot.rows, report.remaining_requests) == (25, 174)
    pilot_ids = sent(emulator)
    assert sum(pilot_ids.values()) == 26 and "a1_u0001" in pilot_ids  # the priming row + 25
    assert query("select count(*) from row_outcomes where final_state = 'succeeded'") == [(26,)]

    summary = batch_job(job_file=str(job))
    assert summary.final_states == {"succeeded": 200}
    ids = sent(emulator)
    assert len(ids) == 200 and set(ids.values()) == {1}  # every row sent once, in all
    assert query("select billed_requests from job_costs") == [(200,)]  # costs counted once
    assert query(
        "select purpose, count(*), sum(n_requests) from batches group by all order by all"
    ) == [("main", 1, 174), ("pilot", 1, 25), ("prime", 1, 1)]
    assert query(
        "select estimate, sample_rows, finished, abs(error_rate) < 0.05 "
        "from job_estimate_errors order by estimate"
    ) == [("pilot", 25, True, True), ("static", None, True, True)]

    again = pilot_job(job_file=str(job), rows=5)  # a pilot already made: sends nothing more
    assert again == report and sent(emulator) == ids


def test_the_pilot_projects_a_job_whose_answers_vary_within_10_percent(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    summary = batch_job(job_file=str(varied_job(tmp_path, rows=300, pilot_rows=30)))
    assert summary.final_states == {"succeeded": 300}
    [(shortest, longest, spread)] = query(
        "select min(output_tokens), max(output_tokens), stddev(output_tokens) / avg(output_tokens) "
        "from results"
    )
    assert longest > 4 * shortest and spread > 0.4  # the answers' lengths really vary
    errors = dict(query("select estimate, error_rate from job_estimate_errors"))
    assert abs(errors["pilot"]) < 0.10, errors
    assert abs(errors["static"]) > 0.5, errors  # what the pricing page alone cannot know
    [(low, actual, high)] = query(
        "select low_usd::double, actual_usd::double, high_usd::double from job_estimate_errors "
        "where estimate = 'pilot'"
    )
    assert low < high and low <= actual * 1.1 and actual * 0.9 <= high


def test_pilot_rows_over_budget_stops_before_the_main_batches_and_keeps_the_pilot(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # about $0.05 for the job; the pilot's share of the static estimate is ~$0.004
    job = write_job(tmp_path, rows=300, pilot_rows=20, max_cost_usd=0.01)
    code, out = cli("run", str(job))
    assert code == 2, out
    assert "the pilot projects $0.0" in out and "above max_cost_usd $0.0100" in out
    assert "the main batches (279 requests) were not sent" in out
    assert "20 rows are done and kept" in out
    assert sum(sent(emulator).values()) == 21  # the priming row and the pilot, no more
    assert query("select final_state, count(*) from row_outcomes group by all order by all") == [
        ("pending", 279),
        ("succeeded", 21),
    ]
    [(expected,)] = query("select expected_usd from job_estimates where estimate = 'pilot'")
    assert expected > 0.01

    code, out = cli("run", str(job), "--set", "max_cost_usd=1")  # raised: the rest is sent
    assert code == 0, out
    ids = sent(emulator)
    assert len(ids) == 300 and set(ids.values()) == {1}


def test_halfrate_pilot_over_budget_prints_the_report_then_says_the_run_would_stop(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # about $0.05 for the job: the pilot's share fits $0.01, the projection does not
    job = write_job(tmp_path, rows=300, max_cost_usd=0.01)
    code, out = cli("pilot", str(job), "--rows", "20")
    assert code == 2, out  # README: exit codes (fix needed)
    assert "projected job cost" in out  # the report first
    assert "the pilot projects $0.0" in out and "above max_cost_usd $0.0100" in out, out
    assert "sends the other" not in out  # no invitation to run what the budget refuses
    assert sum(sent(emulator).values()) == 21  # the priming row and the pilot

    code, out = cli("run", str(job))  # the run agrees: it stops before the main batches
    assert code == 2 and "the main batches (279 requests) were not sent" in out, out
    assert sum(sent(emulator).values()) == 21


def test_halfrate_pilot_prints_the_report_and_refuses_what_would_pay_twice(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=60)
    code, out = cli("pilot", str(job), "--rows", "12")
    assert code == 0, out
    for line in ("pilot rows", "12 (12 requests, 12 billed)", "output tokens per row",
                 "cache hit rate", "invalid output rate", "cost per row", "projected job cost",
                 "static estimate", "47 requests", "sent after 1h", "within 1h"):  # fmt: skip
        assert line in out, line
    assert sum(sent(emulator).values()) == 13

    code, out = cli("pilot", str(job), "--rows", "0")
    assert code == 2 and "--rows" in out
    code, out = cli("pilot", str(job), "--set", "pilot_rows=-1")
    assert code == 2 and "pilot_rows" in out

    (tmp_path / "other").mkdir()
    other = write_job(tmp_path / "other", rows=10, name="started")
    assert cli("run", str(other))[0] == 0
    code, out = cli("pilot", str(other))
    assert code == 2 and "'started' was started without a pilot" in out, out
    assert sum(sent(emulator).values()) == 13 + 10  # the refused pilot sent nothing

    (tmp_path / "one").mkdir()
    alone = write_job(tmp_path / "one", rows=1, name="alone")
    code, out = cli("pilot", str(alone))
    assert code == 2 and "fewer than two rows to send" in out, out
    assert sum(sent(emulator).values()) == 13 + 10  # nothing sent: `halfrate run` sends it


def test_recover_rebuilds_a_pilot_and_the_job_still_pays_each_row_once(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=80)
    pilot_job(job_file=str(job), rows=15)
    shutil.rmtree(get_settings().workdir / "intents-demo")  # the job folder is lost
    code, out = cli("recover", "intents-demo")
    assert code == 0 and "2 batch(es) attached" in out, out
    summary = batch_job(job_file=str(job))
    assert summary.final_states == {"succeeded": 80}
    ids = sent(emulator)
    assert len(ids) == 80 and set(ids.values()) == {1}


def test_a_real_time_job_pilots_in_real_time_and_pays_each_row_once(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, rows=60, mode="realtime")
    report = pilot_job(job_file=str(job), rows=10)
    assert isinstance(report, PilotReport) and report.prices == "realtime"
    assert len(emulator.admin.messages()) == 10  # the pilot's rows, one call each
    summary = batch_job(job_file=str(job))
    assert summary.final_states == {"succeeded": 60}
    assert len(emulator.admin.messages()) == 60 and emulator.admin.audit() == []  # no batch
    [(pilot, static, actual)] = query(
        "select max(expected_usd) filter (estimate = 'pilot'), "
        "max(expected_usd) filter (estimate = 'static'), max(actual_usd) "
        "from job_estimate_errors"
    )
    assert abs(pilot - actual) < actual * Decimal("0.02")  # full price, warm cache: as it ran
    assert abs(static - actual) < actual * Decimal("0.05")  # the real-time figure, not batch
