"""No needless round trips: what one run asks of the API and writes to Prefect, counted."""

from collections import Counter
from pathlib import Path

import pytest

from flows.batch_job import batch_job
from halfrate_emulator import EmulatorOptions, EmulatorServer
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


def test_each_poll_retrieves_each_batch_once_and_writes_progress_only_when_it_moves(
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
    # Batches take 2 s; polled every 0.2 s, the wait takes about ten polls.
    options = EmulatorOptions(processing_seconds=2.0)
    with running_emulator(tmp_path, monkeypatch, options) as server, caplog.at_level("INFO"):
        summary = batch_job(job_file=str(write_job(tmp_path, rows=30, prime_cache=False)))
        assert summary.final_states == {"succeeded": 30}
        calls = api_calls(server)

    messages = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    polls = 1 + sum("BatchesNotReady" in m and "Retry " in m for m in messages)
    assert polls >= 4, "the wait was too short to show anything"
    assert Counter(calls) == {
        "GET /v1/messages/batches": 1,  # preflight: the key is accepted
        "POST /v1/messages/count_tokens": 4,  # the estimate
        "POST /v1/messages/batches": 1,  # one create
        "GET /v1/messages/batches/{id}": polls,  # one retrieve per poll, none before the download
        "GET /v1/messages/batches/{id}/results": 1,
    }
    # The progress artifact: created at the first poll, updated once (when the batch ended).
    assert artifact_writes == ["create_progress_artifact", "update_progress_artifact"]
    # Each poll logs one line (Prefect's retry line); ours only at the first and when one ended.
    ours = [m for m in messages if m.startswith("attempt 1: ") and "batches ended" in m]
    assert len(ours) == 2
