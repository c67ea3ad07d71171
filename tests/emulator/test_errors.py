"""Every 4xx path answers in the API's error shape, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import orjson
import pytest

from halfrate_emulator import EmulatorServer

from .conftest import MakeServer
from .helpers import HEADERS, raw, request

CREATE = "/v1/messages/batches"


def error_of(response: Any, status: int, error_type: str = "invalid_request_error") -> str:
    """Assert the exact error shape and return the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error", "request_id"}
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"]
    return str(body["error"]["message"])


def still_serving(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        assert http.post(CREATE, json={"requests": [request("ok")]}).status_code == 200


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        ("has space", "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
        ("x" * 65, "requests.1.custom_id: String should have at most 64 characters"),
        ("", "requests.1.custom_id: String should have at least 1 character"),
        ("dup", "requests.1.custom_id: Duplicate custom_id 'dup'"),
        (7, "requests.1.custom_id: Input should be a valid string"),
    ],
)
def test_custom_id_problems_are_400(server: EmulatorServer, custom_id: Any, expected: str) -> None:
    body = {"requests": [request("dup"), request(custom_id)]}
    with raw(server.base_url) as http:
        message = error_of(http.post(CREATE, json=body), 400)
    assert message.startswith(expected)
    assert server.admin.audit() == []
    still_serving(server)


def test_custom_id_error_through_the_sdk(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"requests\.0\.custom_id"):
        client.messages.batches.create(requests=[request("no/slash")])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"requests": []}, "requests: List should have at least 1 item after validation, not 0"),
        ({}, "requests: Field required"),
        ({"requests": [request("a")], "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"requests": {"a": 1}}, "requests: Input should be a valid list"),
        ([request("a")], "Input should be a valid dictionary"),
        ({"requests": [request("a") | {"x": 1}]}, "requests.0.x: Extra inputs are not permitted"),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params: Field required"),
        ({"requests": [{"custom_id": "a", "params": []}]}, "requests.0.params: Input should be"),
        ({"requests": ["a"]}, "requests.0: Input should be a valid dictionary"),
    ],
)
def test_body_shape_problems_are_400(server: EmulatorServer, body: Any, expected: str) -> None:
    with raw(server.base_url) as http:
        assert error_of(http.post(CREATE, json=body), 400).startswith(expected)


def test_too_many_requests_is_400(server: EmulatorServer) -> None:
    line = b'{"custom_id":"r%d","params":{}}'
    body = b'{"requests":[' + b",".join(line % i for i in range(100_001)) + b"]}"
    with raw(server.base_url) as http:
        message = error_of(http.post(CREATE, content=body), 400)
    assert message == "requests: List should have at most 100000 items after validation, not 100001"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"requests": [', b"", b'{"requests": [{}]} trailing', b'{"requests": NaN}'],
)
def test_malformed_json_is_400(server: EmulatorServer, body: bytes) -> None:
    with raw(server.base_url) as http:
        assert "invalid JSON" in error_of(http.post(CREATE, content=body), 400)
    still_serving(server)


def test_non_utf8_body_is_400(server: EmulatorServer) -> None:
    body = b'{"requests": [{"custom_id": "a", "params": {"x": "caf\xe9"}}]}'
    with raw(server.base_url) as http:
        assert "UTF-8" in error_of(http.post(CREATE, content=body), 400)
        assert error_of(http.post("/v1/messages", content=b'{"a":"\xff"}'), 400)
    still_serving(server)


def test_missing_or_unknown_version_is_400(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        http.headers.pop("anthropic-version")
        assert "anthropic-version" in error_of(http.get(CREATE), 400)
        assert "anthropic-version" in error_of(
            http.get(CREATE, headers={"anthropic-version": "1999-01-01"}), 400
        )
        assert http.get(CREATE, headers={"anthropic-version": "2026-10-21"}).status_code == 200


def test_missing_key_is_401(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        http.headers.pop("x-api-key")
        error_of(http.get(CREATE), 401, "authentication_error")
        assert http.get(CREATE, headers={"authorization": "Bearer anything"}).status_code == 200


def test_configured_key_wrong_key_is_401(make_server: MakeServer) -> None:
    server = make_server(api_key="right")
    client = anthropic.Anthropic(api_key="wrong", base_url=server.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        client.messages.batches.list()
    assert err.value.request_id and err.value.request_id.startswith("req_01")
    good = anthropic.Anthropic(api_key="right", base_url=server.base_url, max_retries=0)
    assert good.messages.batches.list().data == []
    with raw(server.base_url) as http:  # x-api-key wins over Authorization when both are sent
        both = {"x-api-key": "right", "authorization": "Bearer wrong"}
        assert http.get(CREATE, headers=both).status_code == 200
        error_of(
            http.get(CREATE, headers={"x-api-key": "wrong", "authorization": "Bearer right"}),
            401,
            "authentication_error",
        )


def test_unknown_batch_and_path_are_404(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_01doesnotexist")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.cancel("msgbatch_01doesnotexist")
    with raw(server.base_url) as http:
        error_of(http.get("/v1/nothing"), 404, "not_found_error")
        error_of(http.put(CREATE), 405, "invalid_request_error")


def test_oversized_body_is_413_with_and_without_content_length(make_server: MakeServer) -> None:
    server = make_server(max_batch_bytes=100_000)
    client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
    big = [request(f"r{i}", "x" * 1000) for i in range(200)]
    with pytest.raises(anthropic.RequestTooLargeError):
        client.messages.batches.create(requests=big)

    def chunks() -> Iterator[bytes]:
        yield b'{"requests": ['
        for i in range(300):
            yield (b"," if i else b"") + orjson.dumps(request(f"r{i}", "y" * 1000))
        yield b"]}"

    with raw(server.base_url) as http:
        error_of(http.post(CREATE, content=chunks()), 413, "request_too_large")
    assert server.admin.audit() == []
    assert list((server.data_dir / "spool").iterdir()) == []
    still_serving(server)


def test_list_limit_out_of_range_is_400(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        for limit in ("0", "1001", "abc"):
            error_of(http.get(CREATE, params={"limit": limit}), 400)
        assert http.get(CREATE, params={"limit": "1000"}).status_code == 200
        error_of(http.get(CREATE, params={"after_id": "msgbatch_01nope"}), 400)


def test_messages_validation_is_synchronous(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(
            model="claude-opus-5", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    with raw(server.base_url) as http:
        version = {"anthropic-version": "2026-10-21"}
        body = {
            "model": "claude-opus-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
        message = error_of(
            http.post("/v1/messages", json=body | {"temperature": 0.5}, headers=version), 400
        )
        assert message == "temperature: Extra inputs are not permitted"
        assert http.post("/v1/messages", json=body | {"temperature": 0.5}).status_code == 200
        error_of(http.post("/v1/messages", content=b"[1,"), 400)


def test_deep_params_problems_become_errored_results(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    cases = {
        "no-model": {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        "unknown-model": {"model": "gpt-4"},
        "stream": {"stream": True},
        "speed": {"speed": "fast"},
        "temperature": {"temperature": 1.0},
        "no-messages": {"messages": []},
        "bad-role": {"messages": [{"role": "robot", "content": "x"}]},
        "unknown-param": {"frobnicate": 1},
        "too-many-breakpoints": {
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}] * 5
        },
    }
    items = []
    for custom_id, change in cases.items():
        item = request(custom_id, **change)
        if custom_id == "no-model":
            item["params"] = change
        items.append(item)
    with raw(server.base_url) as http:
        created = http.post(
            CREATE, json={"requests": items}, headers={"anthropic-version": "2026-10-21"}
        )
    assert created.status_code == 200
    server.admin.force_end(created.json()["id"])
    results = {r.custom_id: r.result for r in client.messages.batches.results(created.json()["id"])}
    assert {r.type for r in results.values()} == {"errored"}
    for result in results.values():
        assert result.type == "errored" and result.error.error.type == "invalid_request_error"
    assert (
        results["temperature"].error.error.message == "temperature: Extra inputs are not permitted"
    )  # type: ignore[union-attr]
    assert results["no-model"].error.error.message == "model: Field required"  # type: ignore[union-attr]


def test_headers_are_on_every_response_including_errors(server: EmulatorServer) -> None:
    with raw(server.base_url) as http:
        for response in (http.get(CREATE), http.get("/nope"), http.get("/_emulator/health")):
            assert response.headers["request-id"].startswith("req_01")
            assert "anthropic-organization-id" in response.headers
    assert HEADERS["anthropic-version"] == "2023-06-01"
