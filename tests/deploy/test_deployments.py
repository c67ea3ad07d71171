"""The deployments from prefect.yaml on a real server and worker, against the emulator."""

import json
import os
import re
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
    REPO,
    TERMINAL,
    FinishedRun,
    Stack,
    audit_creates,
    audit_custom_ids,
    chromium,
    dump,
    screenshot,
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
    with duckdb.connect(str(finished_run.tmp / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select count(*), count(distinct row_id) from row_outcomes where job_name = ?",
            [finished_run.job],
        ).fetchone()
        states = dict(
            con.execute(
                "select final_state, count(*) from row_outcomes where job_name = ? group by 1",
                [finished_run.job],
            ).fetchall()
        )
    assert rows == (SAMPLE_ROWS, SAMPLE_ROWS)
    assert states == {"succeeded": SAMPLE_ROWS - 9, "exhausted": 9}  # the emulator's errors
    # Each custom_id was submitted once: the fast emulator serves this run only.
    ids = audit_custom_ids(stack, "fast")
    assert len(ids) == len(set(ids)) >= SAMPLE_ROWS


def test_run_and_task_runs_are_named_after_the_job_and_step(
    stack: Stack, finished_run: FinishedRun
) -> None:
    run = stack.flow_run(finished_run.id)
    assert run["name"] == f"{finished_run.job} · label"
    assert finished_run.job in run["tags"] and "halfrate" in run["tags"]  # + the deployment's
    # The runs list filters by the job's tag.
    body = {"flow_runs": {"tags": {"all_": [finished_run.job]}}}
    assert [r["id"] for r in stack.api("POST", "/flow_runs/filter", body)] == [finished_run.id]
    names = [t["name"] for t in stack.task_runs(finished_run.id)]
    assert not [n for n in names if re.search(r"-[0-9a-f]{3}$", n)], names  # no `submit-184`
    assert set(names) == {
        "prepare-job",
        "preflight",
        "extract",
        "estimate-cost",
        "build-requests",
        "submit · prime",
        "await-completion · prime",
        "download · prime",
        "send-realtime · prime",
        "load · prime",
        "submit · main",
        "await-completion · main",
        "download · main",
        "send-realtime · main",
        "load · main",
        "build-requests · attempt 2",  # the 9 errored rows, sent again
        "submit · main · attempt 2",
        "await-completion · main · attempt 2",
        "download · main · attempt 2",
        "send-realtime · main · attempt 2",
        "load · main · attempt 2",
        "report",
        "check-cancel",
    }, names
    # The graph's edges are the pipeline: each step waits for the one before, not all of them
    # for prepare-job.
    tasks = {t["id"]: t for t in stack.task_runs(finished_run.id)}
    upstream = {
        t["name"]: sorted(tasks[i["id"]]["name"] for v in t["task_inputs"].values() for i in v)
        for t in tasks.values()
    }
    assert upstream["prepare-job"] == []
    assert upstream["preflight"] == ["prepare-job"]
    assert upstream["await-completion · main"] == ["submit · main"]
    assert upstream["download · main"] == ["await-completion · main"]
    assert upstream["build-requests · attempt 2"] == ["load · main"]
    assert upstream["report"] == ["load · main · attempt 2"]  # no empty attempt 3 after it


def test_waiting_reads_as_waiting_in_the_run_logs(stack: Stack, finished_run: FinishedRun) -> None:
    logs = stack.run_logs(finished_run.id)
    assert "failed with exception" not in logs and "Retry " not in logs, logs
    waiting = [line for line in logs.splitlines() if ", next check in " in line]
    assert waiting, logs  # every poll that found batches running says so, once
    assert all(
        re.fullmatch(r"(prime|main) batch: \d+ processing, next check in .*", line)
        for line in waiting
    ), waiting
    assert re.search(r"^main batch ended after .*: 683 succeeded, 9 errored$", logs, re.M), logs


def test_halfrate_warnings_reach_the_run_logs(stack: Stack, finished_run: FinishedRun) -> None:
    """The lost create's reconciliation is logged by halfrate.submit, not by a task: it reaches
    the run through PREFECT_LOGGING_EXTRA_LOGGERS (the worker's, as make prefect-up sets it)."""
    entries = stack.log_entries(finished_run.id)
    lost = [e for e in entries if "create outcome unknown" in e["message"]]
    assert lost and lost[0]["name"] == "halfrate.submit" and lost[0]["level"] == 30, entries
    assert lost[0]["task_run_id"] is not None  # shown under its task (submit · prime)


def test_summary_links_the_failures_and_says_it_ran_on_the_emulator(
    stack: Stack, finished_run: FinishedRun
) -> None:
    prefix = f"halfrate-{finished_run.job}"
    failures = stack.artifact(finished_run.id, f"{prefix}-failures")
    assert len(json.loads(failures["data"])) == 9
    url = f"{stack.ui_url}/v2/artifacts/artifact/{failures['id']}"
    link = stack.artifact(finished_run.id, f"{prefix}-failures-link")
    assert link["type"] == "markdown" and f"]({url})" in link["data"], link
    summary = stack.artifact(finished_run.id, f"{prefix}-summary")["data"]
    assert (
        f"9 of {SAMPLE_ROWS} rows did not succeed (9 exhausted); 684 succeeded. Each row that "
        f"did not succeed is listed with its reason in [the failures table]({url})."
    ) in summary
    accuracy = next(line for line in summary.splitlines() if line.startswith("**Accuracy"))
    after = summary.splitlines()[summary.splitlines().index(accuracy) + 1]
    assert after.startswith("**Ran on the built-in emulator**, not the API"), summary
    assert re.search(r"\*\*Cost at batch prices:\*\* \$\d+\.\d{2,4} ", summary), summary
    # The progress artifacts: one bar and one table for the run, updated in place to its end.
    (progress,) = [a for a in stack.artifacts(finished_run.id) if a["type"] == "progress"]
    assert progress["key"] == f"{prefix}-progress" and progress["data"] == 100.0
    assert progress["description"].startswith(
        "9 of 9 requests ended (100%) · main phase · attempt 2 · as of "
    )
    counts = stack.artifact(finished_run.id, f"{prefix}-progress-counts")["data"]
    assert "| 0 | 9 | 0 | 0 | 0 | 0 |" in counts and "batches ended: 1 of 1" in counts


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
    (artifact,) = stack.api("POST", "/artifacts/filter", body)
    *_, entry = json.loads(artifact["data"])  # the history grows: this job is its last row
    assert entry["job"] == finished_run.job and entry["rows"] == SAMPLE_ROWS
    assert re.fullmatch(r"\$\d+\.\d{2,4}", entry["batch_cost_usd"]), entry  # rounded
    assert run["name"] == f"record-job-cost · {finished_run.job}"
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
    run_id, batch_ids = _start_waiting_run(stack, tmp_path, "deploy-restart")
    (prime,) = [b for b in batch_ids if b not in before]
    stack.emulator("slow", "POST", f"/_emulator/batches/{prime}/end")
    _check_progress_mid_wait(stack, run_id, tmp_path)
    stack.restart_server()
    run = _end_batches_until_completed(stack, run_id)
    assert run["run_count"] == 1  # the same process carried on: no retry was needed
    _assert_each_row_once(stack, before, tmp_path, "deploy-restart")
    names = {t["name"] for t in stack.task_runs(run_id)}
    assert "load · main" in names and not any("attempt 2" in n for n in names)  # all done


def _check_progress_mid_wait(stack: Stack, run_id: str, tmp: Path) -> None:
    """While the main batch runs: the progress artifacts count requests, the logs say it waits."""
    prefix = "halfrate-deploy-restart"

    def in_main_phase(key: str, field: str) -> dict[str, Any] | None:
        found = [a for a in stack.artifacts(run_id) if a["key"] == key]
        return found[0] if found and "main phase" in (found[0][field] or "") else None

    progress = stack.wait_for(
        "the main phase's progress", lambda: in_main_phase(f"{prefix}-progress", "description"), 60
    )
    assert progress["type"] == "progress" and progress["data"] == pytest.approx(100 / 693)
    assert progress["description"].startswith(
        "1 of 693 requests ended (0%) · main phase · first attempt · as of "
    )
    counts = stack.wait_for(
        "the main phase's counts", lambda: in_main_phase(f"{prefix}-progress-counts", "data"), 30
    )
    text = counts["data"]
    assert "| 1 | 0 | 0 | 0 | 692 | 0 |" in text  # the prime request came back; 692 processing
    # (the slow emulator's clock runs ahead: earlier tests advanced it)
    assert re.search(r"batches ended: 1 of 2 · waited .+ · expires in .+", text), text
    line = r"^main batch: 692 processing, next check in \d s, expires in "
    logs = stack.wait_for(  # (logs reach the server a moment after the artifacts)
        "the poll's log line",
        lambda: (found := stack.run_logs(run_id)) and re.search(line, found, re.M) and found,
        timeout=30,
    )
    assert "failed with exception" not in logs and "Retry " not in logs, logs
    tab = f"{stack.ui_url}/v2/runs/flow-run/{run_id}?tab=Artifacts"
    text = screenshot(tab, tmp / "profile-progress", "prefect-ui-progress.png")
    assert "1 of 693 requests ended (0%)" in text and f"{prefix}-progress-counts" in text
    page = f"{stack.ui_url}/v2/artifacts/artifact/{counts['id']}"
    text = screenshot(page, tmp / "profile-counts", "prefect-ui-progress-counts.png", "1400,700")
    assert "692" in text and "not sent yet" in text


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
    text = screenshot(url, tmp_path / "profile-tab", "prefect-ui-run-artifacts.png", "1400,1250")
    assert key in text, f"{key} not on {url}"
    assert "Completed" in text

    # The artifact's own page renders the summary's Markdown.
    (artifact,) = stack.api("POST", "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}})
    page_url = f"{stack.ui_url}/v2/artifacts/artifact/{artifact['id']}"
    text = screenshot(page_url, tmp_path / "profile-summary", "prefect-ui-summary.png", "1400,1100")
    assert f"halfrate job {finished_run.job}" in text
    assert "693 rows" in text and "Cost at batch prices" in text and "cache hit rate" in text
    assert "9 of 693 rows did not succeed" in text and "Ran on the built-in emulator" in text

    # The summary's link opens the failures table.
    failures = stack.artifact(finished_run.id, f"halfrate-{finished_run.job}-failures")
    failures_url = f"{stack.ui_url}/v2/artifacts/artifact/{failures['id']}"
    text = visible_text(chromium(failures_url, tmp_path / "profile-failures", "--dump-dom"))
    assert "exhausted" in text and "u0010" in text


def test_ui_names_the_run_after_its_job(
    stack: Stack, finished_run: FinishedRun, tmp_path: Path
) -> None:
    name = f"{finished_run.job} · label"
    run_page = f"{stack.ui_url}/v2/runs/flow-run/{finished_run.id}"
    shot = "prefect-ui-run-graph.png"
    text = screenshot(run_page, tmp_path / "profile-run", shot, "1400,800", scale=2)
    assert name in text and finished_run.job in text.split(name, 2)[-1], text[:3000]  # + tag
    tasks_tab = f"{run_page}?tab=TaskRuns"
    text = screenshot(
        tasks_tab, tmp_path / "profile-tasks", "prefect-ui-task-runs.png", "1600,1000"
    )
    assert "submit · main · attempt 2" in text and "await-completion · prime" in text, text[:3000]
    runs_list = f"{stack.ui_url}/v2/runs"
    text = screenshot(runs_list, tmp_path / "profile-list", "prefect-ui-runs-list.png", "1600,1500")
    assert name in text, text[:3000]
