"""Fault injection observed through the real SDK: retries, 404s, cut streams, lost creates."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest

from halfrate_emulator import EmulatorServer, FaultConfig, HttpFault

from .conftest import MakeServer
from .helpers import raw, request


def retrying(server: EmulatorServer, retries: int = 2) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=retries)


def retry_counts(server: EmulatorServer, path_part: str) -> list[tuple[str | None, int | None]]:
    return [
        (r["retry_count"], r["status"])
        for r in server.admin.requests()
        if path_part in r["path"] and not r["path"].startswith("/_emulator")
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_count_based_http_faults_are_retried_by_the_sdk(
    server: EmulatorServer, status: int, error: type[Exception]
) -> None:
    server.admin.set_faults(http=[HttpFault(endpoint="create", status=status, count=2)])
    client = retrying(server)
    batch = client.messages.batches.create(requests=[request("a")])
    assert retry_counts(server, "/v1/messages/batches") == [
        ("0", status),
        ("1", status),
        ("2", 200),
    ]
    assert [c["batch_id"] for c in server.admin.audit()] == [batch.id]
    server.admin.set_faults(http=[HttpFault(endpoint="list", status=status, count=1)])
    with pytest.raises(error) as err:
        retrying(server, retries=0).messages.batches.list()
    if status == 429:
        assert err.value.response.headers["retry-after"] == "0.05"  # type: ignore[attr-defined]
    assert retrying(server, retries=0).messages.batches.list().data[0].id == batch.id


def test_faults_on_any_endpoint_and_rate_based_faults(server: EmulatorServer) -> None:
    server.admin.set_faults(http=[HttpFault(endpoint="*", status=500, rate=0.5)], seed=3)
    with raw(server.base_url) as http:
        statuses = [http.get("/v1/messages/batches").status_code for _ in range(40)]
    assert statuses.count(500) > 5 and statuses.count(200) > 5
    server.admin.set_faults(http=[HttpFault(endpoint="*", status=500, rate=0.5)], seed=3)
    with raw(server.base_url) as http:
        again = [http.get("/v1/messages/batches").status_code for _ in range(40)]
    assert again == statuses  # deterministic for a seed


def test_transient_404_right_after_create(server: EmulatorServer) -> None:
    server.admin.set_faults(transient_404=2)
    client = retrying(server, retries=0)
    batch = client.messages.batches.create(requests=[request("a")])
    for _ in range(2):
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)
    assert client.messages.batches.retrieve(batch.id).id == batch.id


def test_results_stream_cut_raises_in_the_sdk_then_recovers(server: EmulatorServer) -> None:
    client = retrying(server, retries=0)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(50)])
    server.admin.force_end(batch.id)
    server.admin.set_faults(results_cut_after=10, results_cut_count=2)
    received = []
    with pytest.raises(httpx2.RemoteProtocolError):
        for item in client.messages.batches.results(batch.id):
            received.append(item.custom_id)
    assert 9 <= len(received) <= 10  # the SDK's decoder holds back the last complete line
    body = b""
    url = f"/v1/messages/batches/{batch.id}/results"
    with (
        raw(server.base_url) as http,
        pytest.raises(httpx2.RemoteProtocolError),
        http.stream("GET", url) as response,
    ):
        for chunk in response.iter_bytes():
            body += chunk
    assert body.count(b"\n") == 10 and body.endswith(b"\n")
    assert len(list(client.messages.batches.results(batch.id))) == 50


def test_lost_create_response_is_committed_on_the_server(server: EmulatorServer) -> None:
    server.admin.set_faults(lose_create_responses=1)
    with pytest.raises(anthropic.APIConnectionError):
        retrying(server, retries=0).messages.batches.create(requests=[request("a"), request("b")])
    audit = server.admin.audit(custom_ids=True)
    assert len(audit) == 1 and audit[0]["response_dropped"] is True
    assert audit[0]["custom_ids"] == ["a", "b"]
    listed = retrying(server, retries=0).messages.batches.list()
    assert [b.id for b in listed.data] == [audit[0]["batch_id"]]


def test_lost_create_with_sdk_retries_makes_a_duplicate(server: EmulatorServer) -> None:
    server.admin.set_faults(lose_create_responses=1)
    batch = retrying(server).messages.batches.create(requests=[request("a")])
    audit = server.admin.audit()
    assert [a["response_dropped"] for a in audit] == [True, False]
    assert audit[1]["batch_id"] == batch.id  # no idempotency key: the retry is a second batch


def test_per_request_errored_and_expired_rates_are_deterministic(make_server: MakeServer) -> None:
    server = make_server(faults=FaultConfig(errored_rate=0.2, expired_rate=0.1, seed=11))
    client = retrying(server, retries=0)
    outcomes = []
    for _ in range(2):
        batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(100)])
        server.admin.force_end(batch.id)
        results = client.messages.batches.results(batch.id)
        outcomes.append({r.custom_id: r.result for r in results})
    first, second = outcomes
    assert {k: v.type for k, v in first.items()} == {k: v.type for k, v in second.items()}
    errored = [r for r in first.values() if r.type == "errored"]
    expired = [r for r in first.values() if r.type == "expired"]
    assert 8 <= len(errored) <= 35 and 2 <= len(expired) <= 20
    kinds = {r.error.error.type for r in errored if r.type == "errored"}
    assert kinds == {"api_error", "overloaded_error"}


def test_errored_by_custom_id_pattern(server: EmulatorServer) -> None:
    server.admin.set_faults(errored_custom_id_pattern="^poison")
    client = retrying(server, retries=0)
    batch = client.messages.batches.create(requests=[request("poison-1"), request("fine-1")])
    server.admin.force_end(batch.id)
    types = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    assert types == {"poison-1": "errored", "fine-1": "succeeded"}


def test_invalid_outputs_by_custom_id_pattern(server: EmulatorServer) -> None:
    server.admin.set_faults(invalid_output_custom_id_pattern="^a1_")
    client = retrying(server, retries=0)
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["x", "y"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    structured = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    batch = client.messages.batches.create(
        requests=[request("a1_r", **structured), request("a2_r", **structured), request("a1_t")]
    )
    server.admin.force_end(batch.id)
    texts = {}
    for r in client.messages.batches.results(batch.id):
        assert r.result.type == "succeeded"
        block = r.result.message.content[0]
        texts[r.custom_id] = block.text if block.type == "text" else None
    assert texts == {"a1_r": "{}", "a2_r": '{"label":"y"}', "a1_t": ""}


def test_faults_from_options_and_admin_snapshot(make_server: MakeServer) -> None:
    plan = FaultConfig(http=(HttpFault(endpoint="retrieve", status=529, count=1),))
    server = make_server(faults=plan)
    assert server.admin.faults()["http"][0]["count"] == 1
    client = retrying(server, retries=0)
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.OverloadedError):
        client.messages.batches.retrieve(batch.id)
    assert server.admin.faults()["http"][0]["count"] == 0
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    server.admin.clear_faults()
    assert server.admin.faults()["http"] == []
    with raw(server.base_url) as http:
        bad = http.put("/_emulator/faults", json={"errored_rate": 3})
    assert bad.status_code == 400 and bad.json()["type"] == "error"


def test_stalled_create_is_committed_before_the_response(server: EmulatorServer) -> None:
    server.admin.set_faults(stall_create_responses=1, stall_seconds=30)
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0, timeout=0.5)
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.batches.create(requests=[request("a")])
    assert len(server.admin.audit()) == 1  # committed although the client never heard back
    server.admin.set_faults(stall_create_responses=1, stall_seconds=0.2)
    started = time.monotonic()
    batch = retrying(server, retries=0).messages.batches.create(requests=[request("b")])
    assert time.monotonic() - started >= 0.2
    assert server.admin.audit()[-1]["batch_id"] == batch.id


def test_spend_cap_429_has_an_error_code_and_no_retry_after(server: EmulatorServer) -> None:
    cap = HttpFault(
        endpoint="create", status=429, count=1, error_code="enforced_spend_limit_reached"
    )
    server.admin.set_faults(http=[cap])
    with pytest.raises(anthropic.EnforcedSpendLimitReachedError) as err:
        retrying(server, retries=0).messages.batches.create(requests=[request("a")])
    assert "retry-after" not in err.value.response.headers
    assert err.value.error_code == "enforced_spend_limit_reached"
