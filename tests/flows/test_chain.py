"""A chain of jobs as one flow run (each stage a subflow), resumed after a kill between its
stages; `halfrate export` of its outputs; bad chains refused before anything is sent."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from cli.app import app
from flows.chain import job_chain
from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate.summary import ChainSummary
from halfrate_emulator import EmulatorOptions, EmulatorServer
from tests.flows.conftest import SAMPLES, halfrate_bin, running_emulator, subprocess_env

pytestmark = pytest.mark.slow
ROWS = 20
runner = CliRunner()


def chain_files(tmp_path: Path) -> list[str]:
    """The trivia sample chain on its first 20 questions: answer them, then judge the answers
    (the judge's file as committed: it names only criteria, scale and the reference)."""
    lines = (SAMPLES / "trivia.csv").read_text().splitlines(keepends=True)[: ROWS + 1]
    (tmp_path / "trivia.csv").write_text("".join(lines))
    answers = yaml.safe_load((SAMPLES / "trivia-answers.yaml").read_text())
    answers |= {"source": str(tmp_path / "trivia.csv"), "prime_cache": False}
    (tmp_path / "answers.yaml").write_text(yaml.safe_dump(answers))
    (tmp_path / "judge.yaml").write_text((SAMPLES / "trivia-judge.yaml").read_text())
    return [str(tmp_path / "answers.yaml"), str(tmp_path / "judge.yaml")]


def sent_ids(server: EmulatorServer) -> list[str]:
    return [c for create in server.admin.audit(custom_ids=True) for c in create["custom_ids"]]


def test_a_chain_runs_each_job_as_a_subflow_and_totals_the_cost(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    chain = job_chain(job_files=chain_files(tmp_path))

    assert isinstance(chain, ChainSummary)
    assert [(s.job_name, s.kind, s.final_states) for s in chain.stages] == [
        ("trivia-answers", "generate", {"succeeded": ROWS}),
        ("trivia-judge", "judge", {"succeeded": ROWS}),
    ]
    costs = [s.batch_cost_usd for s in chain.stages]
    assert all(c and c > 0 for c in costs) and chain.batch_cost_usd == pytest.approx(sum(costs))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    [parent] = [r for r in runs if r.name and r.parameters.get("job_files")]
    children = [r for r in runs if r.parent_task_run_id and r.parameters.get("job_file")]
    assert len(children) >= 2 and parent.state and parent.state.is_completed()
    assert sorted(sent_ids(emulator)) == sorted(
        [f"a1_q{i:03d}" for i in range(1, ROWS + 1)] * 2  # each stage sent each row once
    )


def test_a_chain_killed_between_its_stages_resumes_without_sending_twice(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    files = chain_files(tmp_path)
    log = tmp_path / "chain.log"
    second_stage = get_settings().workdir / "trivia-judge" / "job.json"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [halfrate_bin(), "run", *files],
            env=subprocess_env(prefect_api),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while not second_stage.exists():  # the first stage finished: the second one starts
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    creates_before = len(emulator.admin.audit())

    chain = job_chain(job_files=files)

    assert [s.final_states for s in chain.stages] == [{"succeeded": ROWS}] * 2
    audit = emulator.admin.audit(custom_ids=True)
    assert creates_before >= 1 and len(audit) == 2  # one batch per stage, none sent again
    assert [len(set(create["custom_ids"])) for create in audit] == [ROWS, ROWS]


def test_export_writes_the_outputs_with_the_source_columns(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job_chain(job_files=chain_files(tmp_path))
    out = tmp_path / "out"
    for fmt, name in (("parquet", "j.parquet"), ("csv", "j.csv"), ("jsonl", "j.jsonl")):
        args = ["export", "trivia-judge", "--format", fmt, "--out", str(out / name)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"wrote {2 * ROWS} rows of trivia-judge" in result.output  # two criteria
    frame = pl.read_parquet(out / "j.parquet")
    assert frame.columns[:4] == ["row_number", "row_id", "prompt", "source_prompt"]
    assert {"id", "question", "reference_answer", "text", "criterion", "score", "rationale"} <= (
        set(frame.columns)
    )
    assert frame["row_number"].to_list() == [n for n in range(1, ROWS + 1) for _ in (1, 2)]
    assert frame["criterion"].unique(maintain_order=True).to_list() == ["concision", "correctness"]
    assert frame["source_prompt"][0] == "Question: " + frame["question"][0]
    assert frame["prompt"][0].startswith("<prompt>\nQuestion: ")
    lines = [json.loads(line) for line in (out / "j.jsonl").read_text().splitlines()]
    assert [r["row_id"] for r in lines] == frame["row_id"].to_list()
    assert pl.read_csv(out / "j.csv")["score"].to_list() == frame["score"].to_list()

    into_folder = runner.invoke(app, ["export", "trivia-judge", "--out", str(out)])
    assert into_folder.exit_code == 0 and (out / "trivia-judge.parquet").is_file()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    nowhere = runner.invoke(app, ["export", "trivia-judge", "--out", str(blocked / "x.csv")])
    assert nowhere.exit_code == 2 and f"--out {blocked / 'x.csv'}: cannot" in nowhere.output

    answers = runner.invoke(app, ["export", "trivia-answers", "--out", str(out / "a.parquet")])
    assert answers.exit_code == 0, answers.output
    with duckdb.connect() as con:
        assert con.execute(
            "select count(*), count(text), min(row_id), bool_or(truncated) from read_parquet($p)",
            {"p": str(out / "a.parquet")},
        ).fetchone() == (ROWS, ROWS, "q001", False)

    source = tmp_path / "trivia.csv"
    source.write_text(source.read_text().replace("q001", "q999"))
    changed = runner.invoke(app, ["export", "trivia-answers"])
    assert changed.exit_code == 2 and "the source changed since job 'trivia-answers'" in (
        changed.output
    )
    bad = runner.invoke(app, ["export", "trivia-judge", "--format", "xlsx"])
    assert bad.exit_code == 2 and "use parquet, csv or jsonl" in bad.output
    unknown = runner.invoke(app, ["export", "nope"])
    assert unknown.exit_code == 2 and "no job named 'nope'" in unknown.output


def test_a_bad_stage_is_refused_before_the_first_stage_sends_anything(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    answers, judge = chain_files(tmp_path)
    keys = yaml.safe_load(Path(judge).read_text())
    Path(judge).write_text(yaml.safe_dump(keys | {"scale": [5, 1]}))
    result = runner.invoke(app, ["run", answers, judge])
    assert result.exit_code == 2 and "scale: [5, 1]: the minimum must be below" in result.output

    Path(judge).write_text(yaml.safe_dump(keys | {"criteria": {}}))
    result = runner.invoke(app, ["run", answers, judge])
    assert result.exit_code == 2 and "criteria: give at least one criterion" in result.output

    Path(judge).write_text(yaml.safe_dump(keys | {"source": "job:trivia-answrs"}))
    result = runner.invoke(app, ["run", answers, judge])
    assert result.exit_code == 2
    assert "source job:trivia-answrs names no earlier job of this chain (trivia-answers)" in (
        result.output
    )
    assert emulator.admin.audit() == []


def test_demo_kind_judge_runs_the_trivia_chain_on_the_emulator(
    prefect_api: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["demo", "--kind", "judge"])
    assert result.exit_code == 0, result.output
    assert "trivia-answers" in result.output and "trivia-judge" in result.output
    assert "total" in result.output and "judge_scores" in result.output
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        scores = con.execute(
            "select criterion, n from judge_scores where job_name = 'trivia-judge' order by 1"
        ).fetchall()
        states = con.execute(
            "select job_name, final_state, count(*) from row_outcomes group by all order by 1"
        ).fetchall()
    assert scores == [("concision", 261), ("correctness", 261)]
    assert states == [("trivia-answers", "succeeded", 261), ("trivia-judge", "succeeded", 261)]
    unknown = runner.invoke(app, ["demo", "--kind", "summarise"])
    assert unknown.exit_code == 2 and "the demos are label, extract, judge" in unknown.output


def test_a_user_cancel_of_a_stage_ends_the_chain_cancelled_before_the_next_stage(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = chain_files(tmp_path)
    log = tmp_path / "chain.log"
    ledger_path = get_settings().workdir / "trivia-answers" / "ledger.sqlite"
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [halfrate_bin(), "run", *files],
                env=subprocess_env(prefect_api),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while not (ledger_path.exists() and _submitted(ledger_path)):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            time.sleep(1)  # the first stage polls in its await step
            result = runner.invoke(app, ["cancel", "trivia-answers"])
            assert result.exit_code == 0, result.output
            assert proc.wait(timeout=120) == 5, log.read_text()  # README: exit codes
        finally:
            if proc.poll() is None:
                proc.kill()
        assert len(server.admin.audit()) == 1  # the first stage's batch only
    output = log.read_text()
    assert "canceled by the user" in output, output
    assert not (get_settings().workdir / "trivia-judge" / "job.json").exists()  # never started
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    [parent] = [r for r in runs if r.parameters.get("job_files") == files]
    assert parent.state is not None and parent.state.is_cancelled(), parent.state


def _submitted(ledger_path: Path) -> bool:
    return any(r.status is BatchStatus.submitted for r in Ledger(ledger_path).records())
