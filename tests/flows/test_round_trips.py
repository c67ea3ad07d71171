"""No needless round trips: what one run asks of the API and writes to Prefect, counted."""

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.batch_job import batch_job
from halfrate_emulator import EmulatorOptions, EmulatorServer
from tests.flows.conftest import running_emulator, write_job

pytestmark = pytest.mark.slow


def api_calls(server: EmulatorServer) -> list[str]:
    """The emulator's log of API calls, each as `METHOD endpoint` (batch ids dropped)."""
    calls = []
    for request in server.admin.requests():
        path = request["path"]
        if path.startswith("/v1/"):
            parts = ["{id}" if p.startswith("msgbatch_") else p for p in path.split("/")]
            calls.append(f"{request['method']} {'/'.join(parts)}")
    return calls


def flow_run_records(api_url: str, run_name: str) -> dict[str, Any]:
    with httpx.Client(base_url=api_url, timeout=30) as http:
        body = {"flow_runs": {"name": {"any_": [run_name]}}}
        [run] = http.post("/flow_runs/filter", json=body).json()
        runs = {"flow_runs": {"id": {"any_": [run["id"]]}}}
        tasks = http.post("/task_runs/filter", json=runs).json()
        page = http.post(
            "/events/filter",
            json={"filter": {"any_resource": {"id": [f"prefect.flow-run.{run['id']}"]}}},
        ).json()
        events = page["events"]
        while page.get("next_page"):
            page = http.get(page["next_page"]).json()
            events += page["events"]
        logs = http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run["id"]]}}})
    return {"tasks": tasks, "events": events, "logs": logs.json()}


def test_each_poll_retrieves_each_batch_once_and_writes_progress_only_when_it_moves(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches take 2 s; polled every 0.2 s, the wait takes about ten polls.
    options = EmulatorOptions(processing_seconds=2.0)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        run = batch_job.with_options(flow_run_name="round-trips")
        summary = run(job_file=str(write_job(tmp_path, rows=30, prime_cache=False)))
        assert summary.final_states == {"succeeded": 30}
        calls = api_calls(server)

    records = flow_run_records(prefect_api, "round-trips")
    [wait] = [t for t in records["tasks"] if t["name"].startswith("await-completion")]
    polls = wait["run_count"]
    assert polls >= 4, "the wait was too short to show anything"
    assert Counter(calls) == {
        "GET /v1/messages/batches": 1,  # preflight: the key is accepted
        "POST /v1/messages/count_tokens": 4,  # the estimate
        "POST /v1/messages/batches": 1,  # one create
        "GET /v1/messages/batches/{id}": polls,  # one retrieve per poll, none before the download
        "GET /v1/messages/batches/{id}/results": 1,
    }
    updates = [e for e in records["events"] if e["event"] == "prefect.artifact.updated"]
    assert len(updates) == 1  # the progress artifact: created, then updated once (batch ended)
    progress_logs = [m for m in records["logs"] if m["message"].startswith("attempt 1: 0/1")]
    progress_logs += [m for m in records["logs"] if m["message"].startswith("attempt 1: 1/1")]
    retry_logs = [m for m in records["logs"] if "Retry " in m["message"]]
    assert len(retry_logs) == polls - 1  # Prefect's line on every poll that waits ...
    assert len(progress_logs) == 2  # ... ours only at the first poll and when a batch ended
