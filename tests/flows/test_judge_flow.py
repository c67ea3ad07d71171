"""Judge jobs as Prefect flows against the emulator over HTTP with the real SDK: graded and
pairwise, with faults; a judge job reading another job's outputs (`source: job:<name>`)."""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml

from flows.batch_job import batch_job
from halfrate import pipeline
from halfrate.extract import ExtractError
from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer
from halfrate_emulator.options import FaultConfig, HttpFault
from tests.flows.conftest import (
    SAMPLES,
    halfrate_bin,
    running_emulator,
    subprocess_env,
    write_job,
)

pytestmark = pytest.mark.slow

FINAL_STATES = {"succeeded", "invalid_output", "failed", "exhausted", "quarantined"}
CRITERIA = {"accuracy": "Does the answer say what the reference says?", "brevity": "Is it short?"}


def warehouse_rows(query: str, **params: object) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(query, params).fetchall()


def creates(server: EmulatorServer) -> int:
    return len(server.admin.audit())


def answers_csv(tmp_path: Path, rows: int) -> Path:
    """Trivia questions with an answer to grade (right for even rows) and a worse one."""
    trivia = pl.read_csv(SAMPLES / "trivia.csv").head(rows)
    right = pl.int_range(pl.len()) % 2 == 0
    answers = trivia.with_columns(
        answer=pl.when(right).then("reference_answer").otherwise(pl.lit("I do not know.")),
        other=pl.lit("Maybe."),
    )
    path = tmp_path / "answers.csv"
    answers.write_csv(path)
    return path


def judge_file(tmp_path: Path, name: str = "grade", **keys: Any) -> Path:
    job = {
        "name": name,
        "kind": "judge",
        "criteria": CRITERIA,
        "prompt_column": "question",
        "reference_column": "reference_answer",
        "max_attempts": 3,
        "prime_cache": False,
        **keys,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_a_graded_judge_job_with_faults_lands_every_row(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(
        FaultConfig(
            seed=5,
            errored_rate=0.1,
            expired_rate=0.05,
            invalid_output_custom_id_pattern=r"^a1_q00[1-5]$",  # re-asked in attempt 2
            http=(HttpFault(endpoint="create", status=529, count=1),),
            results_cut_after=10,
            results_cut_count=1,
        )
    )
    source = answers_csv(tmp_path, 60)
    job = judge_file(tmp_path, source=str(source), response_column="answer", scale=[1, 5])
    summary = batch_job(job_file=str(job))

    assert summary.rows == 60 and set(summary.final_states) <= FINAL_STATES
    assert summary.final_states.get("succeeded", 0) >= 57 and summary.attempts >= 2
    succeeded = summary.final_states["succeeded"]
    [(judged, rows, low, high)] = warehouse_rows(
        "select count(*), count(distinct row_id), min(score), max(score) from judgements"
    )
    assert (judged, rows) == (2 * succeeded, succeeded) and 1 <= low <= high <= 5
    reasked = warehouse_rows(
        "select row_id, attempt from outcomes where row_id between 'q001' and 'q005' order by 1"
    )
    assert reasked == [(f"q00{i}", 2) for i in range(1, 6)]  # invalid at first, valid when re-asked
    [(n, mean)] = warehouse_rows(
        "select n, mean from judge_scores where job_name = 'grade' and criterion = 'accuracy'"
    )
    assert n == succeeded and 1 <= mean <= 5
    assert summary.detail("criterion:accuracy") == pytest.approx(mean)


def test_pairwise_judges_both_orders_and_gives_one_state_per_row(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(FaultConfig(invalid_output_custom_id_pattern=r"^a1ba_q00[12]$"))
    source = answers_csv(tmp_path, 40)
    job = judge_file(tmp_path, source=str(source), compare=["answer", "other"])
    summary = batch_job(job_file=str(job))

    assert summary.final_states == {"succeeded": 40} and summary.attempts == 2
    sent = [c for create in emulator.admin.audit(custom_ids=True) for c in create["custom_ids"]]
    assert sorted(sent) == sorted(
        [f"a1{k}_{r}" for k in ("ab", "ba") for r in pl.read_csv(source)["id"]]
        + ["a2ba_q001", "a2ba_q002"]  # only the invalid order is re-asked
    )
    winners = dict(warehouse_rows("select winner, count(*) from judgements group by all"))
    assert sum(winners.values()) == 80 and set(winners) <= {"a", "b", "tie", "inconsistent"}
    [(consistent,)] = warehouse_rows(
        "select avg((winner_ab = winner_ba)::int) from judgements where winner <> 'inconsistent'"
    )
    assert consistent == 1.0
    assert warehouse_rows("select count(*), count(distinct row_id) from row_outcomes") == [(40, 40)]


def test_a_judge_job_grades_another_jobs_outputs(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    labels = batch_job(job_file=str(write_job(tmp_path, rows=30, prime_cache=False)))
    assert labels.final_states == {"succeeded": 30}
    job = judge_file(
        tmp_path,
        source="job:intents-demo",
        response_column="label",
        prompt_column="text",
        reference_column="intent",
        verdicts=["right", "wrong"],
    )
    summary = batch_job(job_file=str(job))

    assert summary.final_states == {"succeeded": 30}
    sent = {
        cid: content
        for cid, content in warehouse_rows(
            "select r.custom_id, l.label from requests r join labels l using (row_id)"
            " where r.job_name = 'grade'"
        )
    }
    assert len(sent) == 30 and all(cid.startswith("a1_u") for cid in sent)
    [(verdicts,)] = warehouse_rows(
        "select count(*) from judgements where verdict in ('right', 'wrong')"
    )
    assert verdicts == 60
    creates_before = creates(emulator)
    again = batch_job(job_file=str(job))  # resumes: the finished chain sends nothing
    assert again.final_states == summary.final_states and creates(emulator) == creates_before

    # the upstream starts over: its outputs are no longer what was judged
    batch_job(job_file=str(write_job(tmp_path, rows=30, prime_cache=False)), restart=True)
    with pytest.raises(ExtractError, match="that job's outputs changed since this job first read"):
        batch_job(job_file=str(job))
    assert warehouse_rows("select count(*) from judgements where job_name = 'grade'") == [(60,)]


def test_a_job_source_that_is_unknown_or_unfinished_is_refused_before_anything_is_sent(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    settings = get_settings()
    unknown = pipeline.prepare(
        str(judge_file(tmp_path, source="job:nope", scale=[1, 5])), None, False, settings
    )
    with pytest.raises(ExtractError, match=r"source job:nope: no job named 'nope'"):
        pipeline.extract(unknown, settings)

    upstream = pipeline.prepare(str(write_job(tmp_path, rows=10)), None, False, settings)
    pipeline.extract(upstream, settings)
    waiting = judge_file(tmp_path, name="early", source="job:intents-demo", scale=[1, 5])
    early = pipeline.prepare(str(waiting), None, False, settings)
    with pytest.raises(ExtractError, match="not finished: it has not extracted and loaded"):
        pipeline.extract(early, settings)
    pipeline.estimate(upstream, settings)
    for f in pipeline.build(upstream, settings, 1):
        pipeline.submit(upstream, settings, 1, f.purpose)  # sent, not ended: rows pending
    with pytest.raises(ExtractError, match=r"10 of its rows are still pending \('u0001', "):
        pipeline.extract(early, settings)
    assert creates(emulator) == 2  # the upstream's prime and main batch; nothing of the judge
    assert not (settings.workdir / "early" / "ledger.sqlite").exists() or not list(
        (settings.workdir / "early" / "requests").glob("*")
    )


def test_a_pairwise_judge_killed_while_waiting_resumes_without_a_second_create(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        source = answers_csv(tmp_path, 30)
        job = judge_file(tmp_path, source=str(source), compare=["answer", "other"])
        ledger = get_settings().workdir / "grade" / "ledger.sqlite"
        log = tmp_path / "run.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [halfrate_bin(), "run", str(job)],
                env=subprocess_env(prefect_api),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while not (ledger.exists() and BatchStatus.submitted in statuses(ledger)):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1)  # it polls: the run is in the await step
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

        server.admin.advance_clock(3600)
        summary = batch_job(job_file=str(job))

        assert summary.final_states == {"succeeded": 30}
        [create] = server.admin.audit(custom_ids=True)  # one create, never a second
        assert len(create["custom_ids"]) == len(set(create["custom_ids"])) == 60
        assert warehouse_rows("select count(distinct row_id) from judgements") == [(30,)]


def statuses(ledger: Path) -> list[BatchStatus | None]:
    return [r.status for r in Ledger(ledger).records()]
