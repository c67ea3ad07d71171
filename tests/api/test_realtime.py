"""Real-time sends against the emulator with the real SDK: every request answered once, each
call recorded before it is sent, a lost answer sent again once and counted, the API's refusals
and rate limits honoured, and a results file in the batch results format."""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from apitools import Api, Job

from halfrate.errors import APIError, ErrorKind
from halfrate.gateway import BatchGateway, MessageAnswer
from halfrate.ledger import BatchStatus
from halfrate.realtime import RealtimePolicy, RealtimeSent, send_file
from halfrate.realtime_log import RealtimeLog
from halfrate_emulator import FaultConfig, HttpFault
from halfrate_emulator.messages import message_digest

ONE_AT_A_TIME = RealtimePolicy(concurrency=1, backoff=(0.5,), busy_tries=3, timeout=1.0)


@dataclass
class Clock:
    """A fake clock: `sleep` advances `monotonic` and records the delay."""

    now: float = 1000.0
    delays: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def send(
    api: Api,
    job: Job,
    policy: RealtimePolicy = ONE_AT_A_TIME,
    gateway: BatchGateway | None = None,
    clock: Clock | None = None,
) -> RealtimeSent:
    clock = clock or Clock()
    record = job.ledger.record(job.files[0].path)
    return send_file(
        job.ledger,
        job.paths,
        gateway or api.gateway,
        record,
        policy,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


def digests(job: Job) -> dict[str, str]:
    lines = (job.paths.root / job.files[0].path).read_bytes().splitlines()
    return {message_digest(orjson.loads(x)["params"]): orjson.loads(x)["custom_id"] for x in lines}


def calls_per_request(api: Api, job: Job) -> Counter[str]:
    by_digest = digests(job)
    return Counter(by_digest[m["digest"]] for m in api.admin.messages())


def results(job: Job, batch_id: str) -> dict[str, dict[str, Any]]:
    lines = job.paths.results_file(batch_id).read_bytes().splitlines()
    parsed = [orjson.loads(line) for line in lines]
    for line in parsed:
        MessageBatchIndividualResponse.model_validate(line)  # the SDK's own batch result type
    return {line["custom_id"]: line["result"] for line in parsed}


def test_every_request_is_answered_once_into_a_verified_results_file(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([5])
    sent = send(api, job, RealtimePolicy(concurrency=3))

    assert sent.counts == {
        "succeeded": 5, "errored": 0, "canceled": 0, "expired": 0, "processing": 0
    }  # fmt: skip
    assert sent.calls == 5 and sent.lost_calls == 0
    assert calls_per_request(api, job) == Counter(job.all_custom_ids())  # once each
    assert api.admin.audit() == []  # no batch
    got = results(job, sent.batch_id)
    assert set(got) == set(job.all_custom_ids())
    assert {r["type"] for r in got.values()} == {"succeeded"}
    record = job.ledger.record(job.files[0].path)
    assert (record.status, record.mode, record.batch_id) == (
        BatchStatus.downloaded, "realtime", sent.batch_id
    )  # fmt: skip
    assert record.request_counts == sent.counts
    again = send(api, job)  # done: nothing is sent again
    assert again.calls == 0 and len(api.admin.messages()) == 5


def test_a_429_is_sent_again_after_its_retry_after_and_charged_once(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    api.admin.set_faults(
        FaultConfig(http=(HttpFault(endpoint="messages", status=429, count=2),), retry_after=2.5)
    )
    clock = Clock()
    sent = send(api, job, clock=clock)

    assert sent.counts["succeeded"] == 3
    assert clock.delays == [2.5, 2.5]  # the answer's retry-after, over the 0.5 s backoff
    assert calls_per_request(api, job) == Counter(job.all_custom_ids())  # refusals cost nothing
    assert sent.lost_calls == 0


def test_a_refusal_that_does_not_pass_ends_the_request_errored_and_retriable(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([2])
    api.faults(http=[("messages", 529, 3)])  # busy_tries = 3: the first request gives up
    sent = send(api, job)

    got = results(job, sent.batch_id)
    first, second = job.all_custom_ids()
    assert got[first]["type"] == "errored"
    assert got[first]["error"]["error"]["type"] == "overloaded_error"  # retriable, not final
    assert got[second]["type"] == "succeeded"
    assert sent.counts["errored"] == 1 and sent.counts["succeeded"] == 1


def test_a_lost_answer_is_sent_again_once_and_counted_as_a_possible_double_charge(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([4])
    # the third call is answered (and paid) but its answer never arrives: the client times out
    api.admin.set_faults(
        FaultConfig(stall_message_responses=1, stall_messages_after=2, stall_seconds=10)
    )
    sent = send(api, job)

    ids = job.all_custom_ids()
    assert sent.counts["succeeded"] == 4
    assert calls_per_request(api, job) == Counter(ids) + Counter([ids[2]])  # sent again once
    assert sent.lost_calls == 1
    assert RealtimeLog(job.ledger).lost_calls() == [(sent.batch_id, ids[2], 1)]


def test_an_answer_lost_twice_is_not_sent_a_third_time(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    api.admin.set_faults(FaultConfig(stall_message_responses=2, stall_seconds=10))
    sent = send(api, job)

    ids = job.all_custom_ids()
    assert calls_per_request(api, job) == Counter(ids) + Counter([ids[0]])  # 2 calls, no more
    got = results(job, sent.batch_id)
    assert got[ids[0]]["type"] == "errored"  # retriable: a later attempt is a new request
    assert "no answer twice" in got[ids[0]]["error"]["error"]["message"]
    assert RealtimeLog(job.ledger).lost_calls() == [(sent.batch_id, ids[0], 2)]


class CrashAfterAnswer(BaseException):
    """Stands for a kill: the answer reached the process, which died before recording it."""


class DyingGateway(BatchGateway):
    def __init__(self, inner: BatchGateway, die_at: int) -> None:
        super().__init__(inner.client)
        self.calls, self.die_at = 0, die_at

    def create_message(self, params: Any, *, timeout: float) -> MessageAnswer:
        answer = super().create_message(params, timeout=timeout)
        self.calls += 1
        if self.calls == self.die_at:
            raise CrashAfterAnswer
        return answer


def test_a_resumed_send_never_calls_again_for_an_answered_request(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([5])
    with pytest.raises(CrashAfterAnswer):
        send(api, job, gateway=DyingGateway(api.gateway, die_at=3))
    ids = job.all_custom_ids()
    states = RealtimeLog(job.ledger).states(job.ledger.record(job.files[0].path).batch_id or "")
    assert [states[c].state for c in ids[:3]] == ["answered", "answered", "sending"]
    open_ids = [c for c in ids if c not in states or states[c].state != "answered"]

    sent = send(api, job)  # the rerun
    assert sent.counts["succeeded"] == 5
    assert sent.calls == len(open_ids)  # only what had no recorded answer
    assert calls_per_request(api, job) == Counter(ids) + Counter([ids[2]])
    assert sent.lost_calls == 1  # the call the crash lost may have been paid: counted


def test_an_invalid_request_ends_failed_and_a_refused_key_stops_everything(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    path = job.paths.root / job.files[0].path
    lines = path.read_bytes().splitlines(keepends=True)
    bad = orjson.loads(lines[1])
    bad["params"]["max_tokens"] = 0  # the API refuses it (400)
    lines[1] = orjson.dumps(bad) + b"\n"
    path.write_bytes(b"".join(lines))
    api.faults(http=[("messages", 401, 1)])
    with pytest.raises(APIError) as refused:
        send(api, job)
    assert refused.value.kind is ErrorKind.auth and api.admin.messages() == []

    sent = send(api, job)  # the key works again: the rerun sends everything
    got = results(job, sent.batch_id)
    error = got[job.all_custom_ids()[1]]["error"]["error"]
    assert error["type"] == "invalid_request_error" and "400" in error["message"]
    assert sent.counts == {
        "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0, "processing": 0
    }  # fmt: skip


def test_spent_rate_limits_pause_the_calls_until_their_reset(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api = make_api(messages_rate_limit=2, rate_limit_window=1.0)
    job = make_job([5])
    started = time.monotonic()
    record = job.ledger.record(job.files[0].path)
    sent = send_file(job.ledger, job.paths, api.gateway, record, RealtimePolicy(concurrency=1))

    assert sent.counts["succeeded"] == 5
    statuses = [r["status"] for r in api.admin.requests() if r["path"] == "/v1/messages"]
    assert statuses == [200] * 5  # `remaining: 0` paused the sender: it never got a 429
    assert time.monotonic() - started >= 1.5  # 5 calls at 2 a second: two resets waited for


class CancelAfter(BatchGateway):
    def __init__(self, inner: BatchGateway, job: Job, after: int) -> None:
        super().__init__(inner.client)
        self.job, self.after, self.calls = job, after, 0

    def create_message(self, params: Any, *, timeout: float) -> MessageAnswer:
        answer = super().create_message(params, timeout=timeout)
        self.calls += 1
        if self.calls == self.after:
            self.job.ledger.request_cancel([])  # `halfrate cancel` from another process
        return answer


def test_a_user_cancel_stops_new_calls_and_ends_the_rest_canceled(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([5])
    sent = send(api, job, gateway=CancelAfter(api.gateway, job, after=2))

    assert sent.counts == {
        "succeeded": 2, "errored": 0, "canceled": 3, "expired": 0, "processing": 0
    }  # fmt: skip
    assert len(api.admin.messages()) == 2
    assert sent.batch_id in job.ledger.user_cancels()  # its canceled rows end `canceled`
