"""The emulator's limits: the Messages rate limit (headers, 429 with retry-after), the batch
processing-queue cap (429 on create), and Messages answers that are paid for but held."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import anthropic
import pytest

from halfrate_emulator import FaultConfig
from halfrate_emulator.messages import message_digest

from .conftest import MakeServer
from .helpers import request

PARAMS = {
    "model": "claude-haiku-4-5",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "hello"}],
}


def no_retry(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url=base_url, max_retries=0)


def test_messages_answers_carry_rate_limit_headers_and_429_when_spent(
    make_server: MakeServer,
) -> None:
    server = make_server(messages_rate_limit=2, rate_limit_window=1.0)
    client = no_retry(server.base_url)
    first = client.messages.with_raw_response.create(**PARAMS)  # type: ignore[call-overload]
    second = client.messages.with_raw_response.create(**PARAMS)  # type: ignore[call-overload]
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(second.headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(**PARAMS)  # type: ignore[call-overload]
    headers = refused.value.response.headers
    assert 0 < int(headers["retry-after-ms"]) <= 1000
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert len(server.admin.messages()) == 2  # the refused call was not answered, not paid
    time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.05)
    assert client.messages.create(**PARAMS).type == "message"  # type: ignore[call-overload]


def test_the_sdk_honours_the_rate_limit_retry_after(make_server: MakeServer) -> None:
    server = make_server(messages_rate_limit=1, rate_limit_window=0.5)
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=3)
    started = time.monotonic()
    for _ in range(2):
        client.messages.create(**PARAMS)  # type: ignore[call-overload]
    assert time.monotonic() - started >= 0.4  # waited for the window, as retry-after-ms said
    statuses = [r["status"] for r in server.admin.requests() if r["path"] == "/v1/messages"]
    assert statuses[0] == 200 and statuses[-1] == 200 and 429 in statuses


def test_the_processing_queue_cap_refuses_a_create_until_batches_end(
    make_server: MakeServer,
) -> None:
    server = make_server(max_queued_requests=3)
    client = no_retry(server.base_url)
    first = client.messages.batches.create(requests=[request("a"), request("b")])
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.batches.create(requests=[request("c"), request("d")])
    assert "processing queue" in str(refused.value)
    assert refused.value.response.headers["retry-after-ms"] == "50"
    assert [c["batch_id"] for c in server.admin.audit()] == [first.id]  # nothing was created
    client.messages.batches.create(requests=[request("c")])  # 3 queued: fits exactly
    server.admin.force_end(first.id)  # ended batches leave the queue
    client.messages.batches.create(requests=[request("d"), request("e")])
    assert len(server.admin.audit()) == 3


def test_a_held_messages_answer_is_audited_as_paid(make_server: MakeServer) -> None:
    server = make_server()
    server.admin.set_faults(
        FaultConfig(stall_message_responses=1, stall_messages_after=1, stall_seconds=30)
    )
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0, timeout=0.5)
    client.messages.create(**PARAMS)  # type: ignore[call-overload]
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**PARAMS)  # type: ignore[call-overload]
    audit = server.admin.messages()
    assert [m["held"] for m in audit] == [False, True]
    assert {m["digest"] for m in audit} == {message_digest(PARAMS)}
    assert audit[0]["input_tokens"] > 0 and audit[0]["output_tokens"] > 0
    client.messages.create(**PARAMS)  # type: ignore[call-overload]  # stalls are used up
    assert len(server.admin.messages()) == 3


def test_concurrent_messages_calls_are_each_counted_once(make_server: MakeServer) -> None:
    server = make_server(messages_rate_limit=5, rate_limit_window=60.0)
    client = no_retry(server.base_url)
    outcomes: list[str] = []

    def call() -> None:
        try:
            client.messages.create(**PARAMS)  # type: ignore[call-overload]
            outcomes.append("ok")
        except anthropic.RateLimitError:
            outcomes.append("429")

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["429"] * 3 + ["ok"] * 5
    assert len(server.admin.messages()) == 5
