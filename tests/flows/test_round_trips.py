"""No needless round trips: what one run asks of the API and writes to Prefect, counted."""

import logging
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest

from flows.batch_job import batch_job
from halfrate_emulator import EmulatorOptions, EmulatorServer, FaultConfig, HttpFault
from tasks import reporting
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


def test_each_poll_retrieves_each_batch_once_logs_one_line_and_writes_progress_on_news(
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    artifact_writes: list[str] = []
    for name in ("create_progress_artifact", "update_progress_artifact"):
        write = getattr(reporting, name)
        monkeypatch.setattr(
            reporting,
            name,
            lambda *a, _w=write, _n=name, **k: artifact_writes.append(_n) or _w(*a, **k),
        )
    # Batches take 2 s; polled from 0.2 s on, doubling, the wait takes five polls.
    options = EmulatorOptions(processing_seconds=2.0)
    with running_emulator(tmp_path, monkeypatch, options) as server, caplog.at_level("INFO"):
        summary = batch_job(job_file=str(write_job(tmp_path, rows=30, prime_cache=False)))
        assert summary.final_states == {"succeeded": 30}
        calls = api_calls(server)

    messages = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    # A poll that finds the batch running says so in one line of ours, not Prefect's
    # "Task run failed with exception: BatchesNotReady(...) - Retry n/m" (demoted to DEBUG).
    assert not [m for m in messages if "Retry " in m or "failed with exception" in m], messages
    waiting = [m for m in messages if m.startswith("main batch: 30 processing, next check in ")]
    ended = [m for m in messages if m.startswith("main batch ended after ")]
    assert len(ended) == 1 and "30 succeeded" in ended[0], messages
    polls = len(waiting) + 1
    assert polls >= 4, "the wait was too short to show anything"
    # The polls back off from the interval (0.2 s), doubling.
    next_checks = [m.split("next check in ")[1].split(",")[0] for m in waiting]
    assert next_checks == ["0.2 s", "0.4 s", "0.8 s", "1.6 s", "3.2 s"][: len(waiting)]
    assert all("expires in 23 h 59 min" in m or "expires in 24 h" in m for m in waiting)
    assert Counter(calls) == {
        "GET /v1/messages/batches": 1,  # preflight: the key is accepted
        "POST /v1/messages/count_tokens": 4,  # the estimate
        "POST /v1/messages/batches": 1,  # one create
        "GET /v1/messages/batches/{id}": polls,  # one retrieve per poll, none before the download
        "GET /v1/messages/batches/{id}/results": 1,
    }
    # The progress artifact: created at the first poll, updated once (when the batch ended).
    assert artifact_writes == ["create_progress_artifact", "update_progress_artifact"]
    # The graph is the pipeline: each task waits for the one before it, and nothing left to
    # retry after attempt 1 means no empty `build-requests · attempt 2` after the load.
    steps = [
        "prepare-job",
        "preflight",
        "extract",
        "estimate-cost",
        "build-requests",
        "submit · main",
        "await-completion · main",
        "download · main",
        "send-realtime · main",
        "load · main",
        "report",
        "check-cancel",
    ]
    assert task_runs(prefect_api) == list(zip(steps, [[], *[[s] for s in steps[:-1]]], strict=True))


def task_runs(api_url: str) -> list[tuple[str, list[str]]]:
    """The task runs of the latest flow run, in order, each with the tasks it waited for."""
    with httpx.Client(base_url=api_url, timeout=30) as http:
        (run,) = http.post("/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 1}).json()
        body = {"flow_runs": {"id": {"any_": [run["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"}
        tasks = http.post("/task_runs/filter", json=body).json()
    names = {t["id"]: t["name"] for t in tasks}
    return [
        (t["name"], [names[i["id"]] for ins in t["task_inputs"].values() for i in ins])
        for t in tasks
    ]


def test_a_status_check_the_api_does_not_answer_is_a_warning_and_the_wait_goes_on(
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 3 overloaded answers: the SDK's own 2 retries of the retrieve, then one poll's failure.
    faults = FaultConfig(http=(HttpFault(endpoint="retrieve", status=529, count=3),))
    options = EmulatorOptions(processing_seconds=1.0, faults=faults)
    with running_emulator(tmp_path, monkeypatch, options), caplog.at_level("INFO"):
        summary = batch_job(job_file=str(write_job(tmp_path, rows=5, prime_cache=False)))
    assert summary.final_states == {"succeeded": 5}
    records = [r for r in caplog.records if r.name == "prefect.task_runs"]
    (warning,) = [r for r in records if r.levelname == "WARNING"]
    assert re.fullmatch(
        r"main batches: status check failed \(retrieve: 529 overloaded_error: .+\); "
        r"next check in 0\.2 s",
        warning.getMessage(),
    ), warning.getMessage()
    assert not [r for r in records if "failed with exception" in r.getMessage()]


def test_only_prefects_retry_line_for_a_wait_is_quieted() -> None:
    """The filter on Prefect's task-run logger: a retry for KeepWaiting is a DEBUG line (shown
    with PREFECT_LOGGING_LEVEL=DEBUG); any other retry, and a wait that ran out, stay."""
    from halfrate.progress import CheckFailed
    from tasks.await_completion import QuietWaiting

    def record(level: int, exc: Exception, msg: str = RETRY_LINE) -> logging.LogRecord:
        args = ("exception", exc, 3, 108, "60 second(s) from now") if "%" in msg else None
        return logging.LogRecord("prefect.task_runs", level, "", 0, msg, args, None)

    quiet = QuietWaiting()
    waiting = record(logging.INFO, CheckFailed("retrieve: 529 overloaded_error"))
    assert not quiet.filter(waiting) and waiting.levelname == "DEBUG"
    assert quiet.filter(record(logging.INFO, ValueError("a real failure")))
    exhausted = "Task run failed with exception: BatchesNotReady(...) - Retries are exhausted"
    assert quiet.filter(record(logging.ERROR, CheckFailed("x"), exhausted))
    logging.getLogger("prefect.task_runs").setLevel(logging.DEBUG)
    try:
        assert quiet.filter(record(logging.INFO, CheckFailed("x")))  # DEBUG on: shown, as DEBUG
    finally:
        logging.getLogger("prefect.task_runs").setLevel(logging.NOTSET)


RETRY_LINE = "Task run failed with %s: %r - Retry %s/%s will start %s"  # Prefect 3.9's
