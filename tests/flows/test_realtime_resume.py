"""A run killed (SIGKILL) during its real-time phase resumes without a second call for a
request whose answer was recorded; the calls the kill lost are sent again once and counted."""

import sqlite3
from collections import Counter
from pathlib import Path

import orjson
import pytest

from flows.batch_job import batch_job
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer, FaultConfig
from halfrate_emulator.messages import message_digest
from tests.flows.conftest import write_job
from tests.flows.test_crash_resume import kill, start_run, wait_for

pytestmark = pytest.mark.slow
ROWS = 30
JOB = "intents-demo"


def answered_requests() -> int:
    ledger = get_settings().workdir / JOB / "ledger.sqlite"
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as con:
        try:
            (n,) = con.execute(
                "select count(*) from realtime_requests where state = 'answered'"
            ).fetchone()
        except sqlite3.OperationalError:  # the table is made by the first real-time send
            return 0
    return int(n)


def custom_ids_by_digest() -> dict[str, str]:
    digests = {}
    for path in (get_settings().workdir / JOB).glob("requests/a1/*.jsonl"):
        for line in path.read_bytes().splitlines():
            request = orjson.loads(line)
            digests[message_digest(request["params"])] = request["custom_id"]
    return digests


def calls_per_custom_id(server: EmulatorServer) -> Counter[str]:
    digests = custom_ids_by_digest()
    return Counter(digests[m["digest"]] for m in server.admin.messages())


def test_a_kill_during_the_real_time_phase_resumes_without_a_second_call_for_a_recorded_request(
    prefect_api: str,
    emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HALFRATE_REALTIME_CONCURRENCY", "2")
    get_settings.cache_clear()
    # after 10 answers, the next two calls are answered (and paid) but their answers held
    emulator.admin.set_faults(
        FaultConfig(stall_message_responses=2, stall_messages_after=10, stall_seconds=300)
    )
    job = write_job(tmp_path, rows=ROWS, mode="realtime")
    log = tmp_path / "run1.log"
    proc = start_run(job, prefect_api, log)
    wait_for(lambda: len(emulator.admin.messages()) == 12, "two held answers", proc, log)
    wait_for(lambda: answered_requests() == 10, "ten recorded answers", proc, log)
    kill(proc)  # both workers wait on a held answer: those two calls are lost with the process
    held = [m["digest"] for m in emulator.admin.messages() if m["held"]]
    assert len(held) == 2

    emulator.admin.clear_faults()
    summary = batch_job(job_file=str(job))  # the rerun resumes the real-time pseudo-batch

    assert summary.final_states == {"succeeded": ROWS}
    calls = calls_per_custom_id(emulator)
    assert len(calls) == ROWS and sum(calls.values()) == ROWS + 2
    twice = {cid for cid, n in calls.items() if n == 2}
    assert twice == {custom_ids_by_digest()[d] for d in held}  # only the two lost calls, again
    assert emulator.admin.audit() == []  # no batch at all
    assert summary.possible_duplicate_requests == 2
    assert summary.possible_duplicate_cost_usd is not None
    assert summary.possible_duplicate_cost_usd > 0
