"""The batch lifecycle through the real anthropic SDK over loopback HTTP."""

from __future__ import annotations

import re
from collections import Counter

import anthropic
import pytest

from halfrate_emulator import EmulatorServer, FaultConfig

from .conftest import MakeServer
from .helpers import raw, request

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
BATCH_ID = re.compile(r"^msgbatch_01[1-9A-HJ-NP-Za-km-z]{22}$")
BATCH_KEYS = {
    "id", "type", "processing_status", "request_counts", "ended_at", "created_at",
    "expires_at", "archived_at", "cancel_initiated_at", "results_url",
}  # fmt: skip


def test_created_batch_has_the_api_shape(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        response = http.post(
            "/v1/messages/batches", json={"requests": [request("a"), request("b")]}
        )
    assert response.status_code == 200
    batch = response.json()
    assert set(batch) == BATCH_KEYS
    assert BATCH_ID.match(batch["id"])
    assert TIMESTAMP.match(batch["created_at"]) and TIMESTAMP.match(batch["expires_at"])
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == {
        "processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0,
    }  # fmt: skip
    assert batch["results_url"] is None and batch["ended_at"] is None
    assert response.headers["request-id"].startswith("req_01")
    assert response.headers["anthropic-organization-id"]
    assert response.headers["anthropic-workspace-id"]


def test_counts_stay_processing_until_the_end_then_split(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    batch = client.messages.batches.create(requests=[request("a"), request("b")])
    server.admin.advance_clock(59)
    middle = client.messages.batches.retrieve(batch.id)
    assert middle.processing_status == "in_progress"
    assert middle.request_counts.processing == 2
    server.admin.advance_clock(1)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.processing == 0 and ended.request_counts.succeeded == 2
    assert ended.ended_at is not None and ended.results_url is not None
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{batch.id}/results"


def test_all_four_result_types(make_server: MakeServer) -> None:
    faults = FaultConfig(expired_rate=0.3, seed=7)
    server = make_server(processing_seconds=100, faults=faults)
    client = anthropic.Anthropic(
        api_key="k", base_url=server.base_url, max_retries=0, _strict_response_validation=True
    )
    items = [request(f"ok-{i}", f"message number {i}") for i in range(30)]
    items += [request(f"bad-{i}", max_tokens=0) for i in range(5)]
    batch = client.messages.batches.create(requests=items)
    server.admin.advance_clock(50)
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 35
    server.admin.advance_clock(1)
    ended = client.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    results = list(client.messages.batches.results(batch.id))
    seen = Counter(r.result.type for r in results)
    assert seen == {
        "succeeded": counts.succeeded, "errored": counts.errored,
        "canceled": counts.canceled, "expired": counts.expired,
    }  # fmt: skip
    assert all(seen[kind] > 0 for kind in ("succeeded", "errored", "canceled", "expired"))
    assert sum(seen.values()) == 35 and counts.processing == 0
    assert {r.custom_id for r in results} == {i["custom_id"] for i in items}
    for result in results:
        if result.result.type == "errored":
            assert result.custom_id.startswith("bad-")
            assert result.result.error.error.type == "invalid_request_error"
            assert "max_tokens" in result.result.error.error.message


def test_cancel_ended_batch_is_400_and_cancel_twice_is_idempotent(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    first = client.messages.batches.cancel(batch.id)
    again = client.messages.batches.cancel(batch.id)
    assert first.cancel_initiated_at == again.cancel_initiated_at
    server.admin.advance_clock(5)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.batches.cancel(batch.id)
    assert err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_delete_only_when_ended(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    server.admin.force_end(batch.id)
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert batch.id not in [b.id for b in client.messages.batches.list()]
    audit = server.admin.audit(custom_ids=True)
    assert audit[0]["batch_id"] == batch.id and audit[0]["custom_ids"] == ["a"]


def test_expiry_after_24_hours(make_server: MakeServer) -> None:
    server = make_server(processing_seconds=48 * 3600)
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(10)])
    server.admin.advance_clock(24 * 3600 - 1)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    server.admin.advance_clock(1)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at == ended.expires_at
    assert ended.request_counts.succeeded == 5 and ended.request_counts.expired == 5


def test_force_expire_expires_everything_unprocessed(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    batch = client.messages.batches.create(requests=[request("a"), request("b")])
    expired = server.admin.force_expire(batch.id)
    assert expired["processing_status"] == "ended"
    assert expired["request_counts"]["expired"] == 2
    types = {r.result.type for r in client.messages.batches.results(batch.id)}
    assert types == {"expired"}


def test_archive_after_29_days(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    server.admin.advance_clock(60)
    assert len(list(client.messages.batches.results(batch.id))) == 1
    server.admin.advance_clock(29 * 86400 - 61)
    assert client.messages.batches.retrieve(batch.id).archived_at is None
    server.admin.advance_clock(1)
    archived = client.messages.batches.retrieve(batch.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.NotFoundError):
        list(client.messages.batches.results(batch.id))
    assert batch.id in [b.id for b in client.messages.batches.list()]


def test_results_are_lf_only_shuffled_and_stable(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    ids = [f"item-{i:03d}" for i in range(60)]
    batch = client.messages.batches.create(requests=[request(c) for c in ids])
    server.admin.force_end(batch.id)
    with raw(server.base_url) as http:
        first = http.get(f"/v1/messages/batches/{batch.id}/results").content
        second = http.get(f"/v1/messages/batches/{batch.id}/results").content
    assert first == second
    assert b"\r" not in first and b"\n\n" not in first and first.endswith(b"\n")
    order = [c.custom_id for c in client.messages.batches.results(batch.id)]
    assert sorted(order) == ids and order != ids


def test_results_before_end_is_400(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    with raw(server.base_url) as http:
        response = http.get(f"/v1/messages/batches/{batch.id}/results")
    assert response.status_code == 400
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        list(client.messages.batches.results(batch.id))


def test_pagination_both_directions(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    created = [client.messages.batches.create(requests=[request("a")]).id for _ in range(7)]
    newest_first = created[::-1]
    page = client.messages.batches.list(limit=3)
    assert [b.id for b in page.data] == newest_first[:3] and page.has_more
    assert page.first_id == newest_first[0] and page.last_id == newest_first[2]
    assert [b.id for b in client.messages.batches.list(limit=3)] == newest_first
    older = client.messages.batches.list(limit=3, after_id=newest_first[5])
    assert [b.id for b in older.data] == newest_first[6:] and not older.has_more
    newer = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in newer.data] == newest_first[1:3] and newer.has_more
    walked = [b.id for b in client.messages.batches.list(limit=2, before_id=newest_first[6])]
    assert sorted(walked) == sorted(newest_first[:6])
    default = client.messages.batches.list()
    assert len(default.data) == 7 and not default.has_more


def test_beta_namespace_and_beta_query_are_served(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    batch = client.beta.messages.batches.create(
        requests=[request("a")], betas=["message-batches-2024-09-24"]
    )
    assert client.beta.messages.batches.retrieve(batch.id).id == batch.id


def test_zero_processing_seconds_ends_at_once(make_server: MakeServer) -> None:
    server = make_server(processing_seconds=0)
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
    batch = client.messages.batches.create(requests=[request("a"), request("b")])
    assert batch.processing_status == "ended"
    assert batch.request_counts.succeeded == 2 and batch.request_counts.processing == 0
