"""Issue 11 items 3 and 4 as flows against the emulator: a deadline that passes mid-batch,
`mode: realtime`, and a processing-queue cap that forces staged submission."""

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pytest

from flows.batch_job import batch_job
from halfrate.ledger import Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer, HttpFault
from halfrate_emulator.messages import message_digest
from tests.flows.conftest import running_emulator, write_job

pytestmark = pytest.mark.slow
JOB = "intents-demo"


def warehouse_rows(query: str, **params: object) -> list[tuple[object, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(query, params).fetchall()


def job_costs() -> dict[str, object]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        cursor = con.execute("select * from job_costs where job_name = $j", {"j": JOB})
        names = [d[0] for d in cursor.description or []]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def batch_custom_ids(server: EmulatorServer) -> list[str]:
    return [cid for create in server.admin.audit(custom_ids=True) for cid in create["custom_ids"]]


def sent_params() -> dict[str, str]:
    """digest of each request's params -> its custom_id, over every request file of the job."""
    root = get_settings().workdir / JOB
    digests = {}
    for path in sorted(root.glob("requests/a*/*.jsonl")):
        for line in path.read_bytes().splitlines():
            request = orjson.loads(line)
            digests[message_digest(request["params"])] = request["custom_id"]
    return digests


def realtime_custom_ids(server: EmulatorServer) -> list[str]:
    """The custom_id of every answered Messages call (a row's params are unique to it)."""
    by_digest = sent_params()
    return [by_digest[m["digest"]] for m in server.admin.messages()]


@pytest.fixture
def slowish_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """Batches take 12 s of real time, so a 3 s deadline passes while one is processing."""
    options = EmulatorOptions(processing_seconds=12, cancel_seconds=0.3)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def test_a_deadline_mid_batch_cancels_finishes_the_rest_in_real_time_and_prices_both(
    prefect_api: str, slowish_emulator: EmulatorServer, tmp_path: Path
) -> None:
    rows = 60
    job = write_job(tmp_path, rows=rows, prime_cache=False, deadline="3s")
    summary = batch_job(job_file=str(job))

    assert summary.final_states == {"succeeded": rows}
    in_batch = batch_custom_ids(slowish_emulator)
    in_realtime = realtime_custom_ids(slowish_emulator)
    assert len(in_batch) == rows  # the one batch, canceled at the deadline
    [(batch_answers,)] = warehouse_rows(
        "select count(*) from results join batches using (batch_id) where results.job_name = $j"
        " and mode = 'batch' and result_type = 'succeeded'",
        j=JOB,
    )
    assert 0 < batch_answers < rows  # some came back before the cancel: they are kept
    assert len(in_realtime) == len(set(in_realtime)) == rows - batch_answers  # the rest, once
    # every row answered exactly once: a batch answer, or a real-time one
    [(answered, distinct)] = warehouse_rows(
        "select count(*), count(distinct custom_id) from results"
        " where job_name = $j and result_type = 'succeeded'",
        j=JOB,
    )
    assert answered == distinct == rows
    assert summary.realtime_rows == rows - batch_answers
    assert summary.batches == 1 and summary.attempts == 1
    assert summary.deadline is not None

    costs = job_costs()
    assert costs["billed_requests"] == rows
    assert costs["realtime_requests"] == rows - batch_answers
    batch, realtime = (
        Decimal(str(costs["batch_cost_usd"])),
        Decimal(str(costs["realtime_spend_usd"])),
    )
    assert batch > 0 and realtime > 0
    assert costs["cost_usd"] == batch + realtime
    # the batch part at half price, the real-time part at full price
    [(batch_list, realtime_list)] = warehouse_rows(
        "select sum(realtime_cost_usd) filter (where mode = 'batch'),"
        " sum(realtime_cost_usd) filter (where mode = 'realtime') from batch_costs"
        " where job_name = $j",
        j=JOB,
    )
    assert batch == batch_list / 2 and realtime == realtime_list
    assert costs["savings_usd"] == batch  # saved: only what the batch half saved
    ledger = Ledger(get_settings().workdir / JOB / "ledger.sqlite")
    assert list(ledger.system_cancels()) and not ledger.user_cancels()


def test_mode_realtime_skips_the_batch_and_pays_full_price(
    prefect_api: str, slowish_emulator: EmulatorServer, tmp_path: Path
) -> None:
    rows = 40
    summary = batch_job(job_file=str(write_job(tmp_path, rows=rows, mode="realtime")))

    assert summary.final_states == {"succeeded": rows}
    assert slowish_emulator.admin.audit() == []  # no batch at all
    calls = realtime_custom_ids(slowish_emulator)
    assert len(calls) == len(set(calls)) == rows
    assert summary.batches == 0 and summary.realtime_rows == rows
    assert summary.cache_read_tokens > 0  # the first request went alone and wrote the cache
    costs = job_costs()
    assert costs["batch_cost_usd"] == 0 and costs["savings_usd"] == 0
    assert costs["realtime_spend_usd"] == costs["cost_usd"] == costs["realtime_cost_usd"]
    assert costs["possible_duplicate_requests"] == 0


@pytest.fixture
def capped_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """A workspace whose processing queue holds 25 batch requests."""
    options = EmulatorOptions(processing_seconds=1.0, cancel_seconds=0.2, max_queued_requests=25)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


def test_a_queue_cap_forces_staged_submission_without_a_failure(
    prefect_api: str,
    capped_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HALFRATE_MAX_REQUESTS_PER_BATCH", "20")
    get_settings.cache_clear()
    rows = 60
    summary = batch_job(job_file=str(write_job(tmp_path, rows=rows, prime_cache=False)))

    assert summary.final_states == {"succeeded": rows}
    ids = batch_custom_ids(capped_emulator)
    assert len(ids) == len(set(ids)) == rows  # three batches of 20, one at a time, no duplicate
    assert summary.batches == 3
    creates = [
        r["status"]
        for r in capped_emulator.admin.requests()
        if r["method"] == "POST" and r["path"] == "/v1/messages/batches"
    ]
    # the API said "queue full" once per held wave: the rest waited for a batch to end
    assert Counter(creates) == {200: 3, 429: 2}


def test_halfrate_max_queued_requests_sends_in_waves_without_a_429(
    prefect_api: str,
    capped_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HALFRATE_MAX_QUEUED_REQUESTS", "25")  # files are cut to fit: 25, 25, 10
    get_settings.cache_clear()
    rows = 60
    summary = batch_job(job_file=str(write_job(tmp_path, rows=rows, prime_cache=False)))

    assert summary.final_states == {"succeeded": rows}
    audit = capped_emulator.admin.audit(custom_ids=True)
    assert [a["request_count"] for a in audit] == [25, 25, 10]
    ids = [cid for a in audit for cid in a["custom_ids"]]
    assert len(ids) == len(set(ids)) == rows
    statuses = {
        r["status"]
        for r in capped_emulator.admin.requests()
        if r["method"] == "POST" and r["path"] == "/v1/messages/batches"
    }
    assert statuses == {200}  # halfrate kept itself under the cap: never refused


def test_past_the_deadline_nothing_is_batched_and_retries_go_real_time_too(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # the first call (it goes alone) is turned away 6 times: it ends errored, retriable
    emulator.admin.set_faults(http=[HttpFault(endpoint="messages", status=529, count=6)])
    rows = 12
    job = write_job(tmp_path, rows=rows, deadline="2020-01-01T00:00:00Z")
    summary = batch_job(job_file=str(job))

    assert summary.final_states == {"succeeded": rows}
    assert emulator.admin.audit() == []  # a passed deadline sends no batch (nor a prime one)
    assert summary.attempts == 2 and summary.realtime_rows == rows
    [(attempt,)] = warehouse_rows(
        "select attempt from outcomes where job_name = $j and custom_id like 'a2%'", j=JOB
    )
    assert attempt == 2  # the row the API turned away was answered by attempt 2, in real time
    calls = Counter(m["digest"] for m in emulator.admin.messages())
    assert sum(calls.values()) == len(calls) == rows  # the turned-away calls were not answered
