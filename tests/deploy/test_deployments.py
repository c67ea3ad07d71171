"""The deployments from prefect.yaml on a real server and worker, against the emulator."""

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prefect_stack import (
    BIN,
    OUTPUT,
    REPO,
    TERMINAL,
    FinishedRun,
    Stack,
    audit_creates,
    audit_custom_ids,
    chromium,
    dump,
    visible_text,
)
from stack_form import (  # noqa: F401 (the run form's tests: collected here, one stack a worker)
    test_a_bad_value_is_refused_when_the_run_is_created,
    test_a_bad_value_the_schema_cannot_express_stops_the_first_task,
    test_deployed_parameter_schemas_are_forms_without_null,
    test_prefect_deployment_run_refuses_a_bad_param,
    test_the_run_form_reads_well_and_shows_every_key,
    test_the_untouched_form_submits_and_a_bad_value_cannot,
)
from stack_progress import test_a_deployment_run_draws_no_progress_bars  # noqa: F401

from halfrate.ledger import Ledger

# The stack is per xdist worker: every test using it lives in this one module (for --dist
# loadfile/loadscope) and in one xdist_group (which pytest 9.2 + xdist 3.8 currently ignore).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("deploy")]


@pytest.fixture(autouse=True)
def _no_run_left_behind(stack: Stack) -> Iterator[None]:
    """A failed test must not leave a waiting run that holds the deployment's one slot."""
    yield
    stack.cancel_active_runs()


SAMPLE_ROWS = 693


def test_deployment_run_completes_and_lands_every_row(
    stack: Stack, finished_run: FinishedRun
) -> None:
    run = stack.flow_run(finished_run.id)
    assert run["state_type"] == "COMPLETED", stack.run_logs(finished_run.id)
    assert run["parameters"]["job"] == {"name": finished_run.job, "max_attempts": 2}
    names = {t["name"].rsplit("-", 1)[0] for t in stack.task_runs(finished_run.id)}
    assert {"extract", "build-requests", "submit", "await-completion", "download", "load"} <= names
    with duckdb.connect(str(finished_run.tmp / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select count(*), count(distinct row_id) from row_outcomes where job_name = ?",
            [finished_run.job],
        ).fetchone()
    assert rows == (SAMPLE_ROWS, SAMPLE_ROWS)
    # Each custom_id was submitted once: the fast emulator serves this run only.
    ids = audit_custom_ids(stack, "fast")
    assert len(ids) == len(set(ids)) >= SAMPLE_ROWS


def test_run_publishes_summary_artifact(stack: Stack, finished_run: FinishedRun) -> None:
    body = {"artifacts": {"flow_run_id": {"any_": [finished_run.id]}}}
    artifacts = stack.api("POST", "/artifacts/filter", body)
    keys = {a["key"] for a in artifacts}
    assert f"halfrate-{finished_run.job}-summary" in keys, keys


def test_api_key_never_leaves_the_secret_block(stack: Stack, finished_run: FinishedRun) -> None:
    key = stack.api_key
    run = stack.flow_run(finished_run.id)
    assert key not in dump(run)  # parameters, job variables, state messages
    assert key not in stack.run_logs(finished_run.id)
    artifacts = stack.api("POST", "/artifacts/filter", {"limit": 200})
    assert artifacts and key not in dump(artifacts)
    events = stack.events(finished_run.id)
    assert any(e["event"] == "halfrate.job.completed" for e in events)
    assert key not in dump(events)
    for name in stack.procs:
        assert key not in stack.log(name), f"{name}.log shows the key"
    assert key not in finished_run.watch_output
    with duckdb.connect(str(finished_run.tmp / "warehouse.duckdb"), read_only=True) as con:
        tables = [
            t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()
        ]
        for table in tables:
            text = dump(con.execute(f'select * from "{table}"').fetchall())
            assert key not in text, f"warehouse table {table} holds the key"
    # The run did authenticate (the emulators accept only this key) with no key in the
    # worker's environment: it came from the Secret block.
    worker_env = Path(f"/proc/{stack.procs['worker'].pid}/environ").read_bytes()
    assert b"ANTHROPIC_API_KEY" not in worker_env and key.encode() not in worker_env


def test_completed_event_triggers_the_follow_up_deployment(
    stack: Stack, finished_run: FinishedRun
) -> None:
    def follow_up() -> dict[str, Any] | None:
        body = {
            "deployments": {"name": {"any_": ["record-job-cost"]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        }
        runs = stack.api("POST", "/flow_runs/filter", body)
        return next((r for r in runs if r["parameters"].get("job") == finished_run.job), None)

    run = stack.wait_for("record-job-cost run for the job", follow_up, timeout=120)
    assert run["parameters"]["rows"] == SAMPLE_ROWS
    assert isinstance(run["parameters"]["final_states"], dict)
    body = {
        "artifacts": {"key": {"any_": ["halfrate-cost-log"]}, "flow_run_id": {"any_": [run["id"]]}}
    }
    (entry,) = json.loads(stack.api("POST", "/artifacts/filter", body)[0]["data"])
    assert entry["job"] == finished_run.job and entry["rows"] == SAMPLE_ROWS
    # Proven: switch the trigger off so the jobs of later tests start no follow-up processes.
    for automation in stack.api("POST", "/automations/filter", {}):
        if automation["name"].startswith("record-job-cost"):
            stack.api("PATCH", f"/automations/{automation['id']}", {"enabled": False})


def _start_waiting_run(stack: Stack, tmp: Path, job: str) -> tuple[str, list[str]]:
    """A run against the slow emulator, returned once its first batch is being waited on."""
    run_id = stack.create_run(
        "batch-job/intents", {"job": {"name": job}}, stack.run_env("slow", tmp, poll="2")
    )

    def waiting() -> bool:
        if stack.flow_run(run_id)["state_type"] in TERMINAL:
            raise AssertionError(f"{job} ended: {stack.flow_run(run_id)['state']}")
        tasks = stack.task_runs(run_id)
        return any(
            t["name"].startswith("await-completion") and t["state_name"] == "AwaitingRetry"
            for t in tasks
        )

    stack.wait_for(f"{job} waiting on its batch", waiting, timeout=180, every=1)
    return run_id, [c["batch_id"] for c in audit_creates(stack, "slow")]


def test_cancel_waiting_run_cancels_its_batch(stack: Stack, tmp_path: Path) -> None:
    before = {c["batch_id"] for c in audit_creates(stack, "slow")}
    run_id, batch_ids = _start_waiting_run(stack, tmp_path, "deploy-cancel")
    mine = [b for b in batch_ids if b not in before]
    assert mine, "the run created no batch"
    # While it waits, a second copy of the deployment is cancelled, not started (CANCEL_NEW).
    env = stack.run_env("slow", tmp_path, poll="2")
    second = stack.create_run("batch-job/intents", {"job": {"name": "deploy-cancel"}}, env)
    refused = stack.wait_for_state(second, {"CANCELLED"}, timeout=90)
    assert "concurrency limit" in refused["state"]["message"].lower(), refused["state"]
    assert stack.flow_run(run_id)["state_type"] == "RUNNING"

    stack.prefect("flow-run", "cancel", run_id)
    run = stack.wait_for_state(run_id, {"CANCELLED"}, timeout=90)
    assert run["state_name"] == "Cancelled"
    for batch_id in mine:
        batch = stack.emulator("slow", "GET", f"/v1/messages/batches/{batch_id}")
        assert batch["cancel_initiated_at"] is not None, batch
        assert batch["processing_status"] in ("canceling", "ended"), batch
    # The UI's cancel is the user's: recorded as such, so a later run resumes those rows
    # (and a run still going would send nothing more).
    ledger = Ledger(tmp_path / "jobs" / "deploy-cancel" / "ledger.sqlite")
    assert ledger.cancel_requested() is not None
    assert set(ledger.user_cancels()) == set(mine)


def test_killed_flow_process_resumes_on_retry_without_resubmitting(
    stack: Stack, tmp_path: Path
) -> None:
    before = {c["batch_id"] for c in audit_creates(stack, "slow")}
    run_id, _ = _start_waiting_run(stack, tmp_path, "deploy-crash")
    pids = stack.flow_run_pids(run_id)
    assert pids, "no flow-run process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    stack.wait_for_state(run_id, {"CRASHED"}, timeout=60)
    # Prefect 3.9.1: the worker reports the crash a second time once it has run the flow's
    # on_crashed hooks, which would crash a run retried before that: wait for it to be done.
    stack.wait_for(
        "the worker to finish with the crashed process",
        lambda: any(e["event"] == "prefect.worker.executed-flow-run" for e in stack.events(run_id)),
        timeout=120,
        every=1,
    )

    stack.prefect("flow-run", "retry", run_id)

    run = _end_batches_until_completed(stack, run_id)
    assert run["run_count"] >= 2
    _assert_each_row_once(stack, before, tmp_path, "deploy-crash")


def test_waiting_run_survives_a_server_restart(stack: Stack, tmp_path: Path) -> None:
    before = {c["batch_id"] for c in audit_creates(stack, "slow")}
    run_id, _ = _start_waiting_run(stack, tmp_path, "deploy-restart")
    stack.restart_server()
    run = _end_batches_until_completed(stack, run_id)
    assert run["run_count"] == 1  # the same process carried on: no retry was needed
    _assert_each_row_once(stack, before, tmp_path, "deploy-restart")


def _end_batches_until_completed(stack: Stack, run_id: str) -> dict[str, Any]:
    def completed() -> dict[str, Any] | None:
        # Let the slow emulator's batches end: advance its clock past processing_seconds.
        httpx.post(
            f"{stack.emulators['slow']}/_emulator/clock/advance", json={"seconds": 4000}, timeout=30
        )
        run = stack.flow_run(run_id)
        if run["state_type"] in ("FAILED", "CRASHED", "CANCELLED"):
            raise AssertionError(f"run ended {run['state_name']}\n{stack.run_logs(run_id)}")
        return run if run["state_type"] == "COMPLETED" else None

    return dict(stack.wait_for(f"run {run_id} to complete", completed, timeout=240, every=1))


def _assert_each_row_once(stack: Stack, before: set[str], tmp: Path, job: str) -> None:
    """The job's batches (created after `before`) hold each custom_id once; all rows landed."""
    mine = [c for c in audit_creates(stack, "slow") if c["batch_id"] not in before]
    ids = [custom_id for c in mine for custom_id in c["custom_ids"]]
    assert len(ids) == len(set(ids)) >= SAMPLE_ROWS, "a custom_id was submitted twice"
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as con:
        found = con.execute(
            "select count(*) from row_outcomes where job_name = ?", [job]
        ).fetchone()
    assert found == (SAMPLE_ROWS,)


def test_zombie_automation_is_created_once(stack: Stack) -> None:
    for _ in range(2):  # `make prefect-up` runs it on every start
        done = subprocess.run(
            [str(BIN / "python"), "-m", "flows.automations", "--within", "600"],
            cwd=REPO,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "is in place" in done.stdout
    automations = stack.api("POST", "/automations/filter", {})
    (zombie,) = [a for a in automations if a["name"] == "halfrate-crash-zombie-flow-runs"]
    assert zombie["trigger"]["posture"] == "Proactive" and zombie["trigger"]["within"] == 600
    (action,) = zombie["actions"]
    assert action["type"] == "change-flow-run-state" and action["state"] == "CRASHED"


def test_pull_step_points_at_the_checkout_deployed_from(stack: Stack, tmp_path: Path) -> None:
    dep = stack.api("GET", "/deployments/name/batch-job/intents")
    assert dep["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
    # A fresh clone elsewhere: deploying from it points that deployment at the clone.
    clone = tmp_path / "elsewhere" / "halfrate"
    clone.mkdir(parents=True)
    shutil.copy(REPO / "prefect.yaml", clone)
    shutil.copytree(REPO / "flows", clone / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tasks", clone / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    # (It stays deployed from the clone: the copy holds the same flows, so later runs still work.)
    _deploy_from(stack, clone, "record-job-cost")
    dep = stack.api("GET", "/deployments/name/record-job-cost/record-job-cost")
    step = dep["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert step == {"directory": str(clone)}


def _deploy_from(stack: Stack, where: Path, name: str) -> None:
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", name],
        cwd=where,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


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
