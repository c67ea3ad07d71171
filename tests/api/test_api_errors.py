"""Item 1: no SDK exception leaves the gateway; every failure is a plain `APIError`.

Each case answers a real SDK call (over a mock transport, or the emulator) and checks the kind
halfrate gives it, and that nothing of the SDK (request, headers, key) can be reached from the
raised error or from its pickle.
"""

import pickle
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx2
import orjson
import pytest
from apitools import Api, Job

from halfrate.errors import APIError, ErrorKind
from halfrate.gateway import BatchGateway, body_size

KEY = "sk-ant-test-unique-key-0123456789"


def _gateway(handler: Callable[[httpx2.Request], httpx2.Response]) -> BatchGateway:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(
        api_key=KEY, base_url="http://fake.local", http_client=http, max_retries=0
    )
    return BatchGateway(client)


def _error_body(error_type: str, message: str, code: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"type": error_type, "message": message}
    if code:
        error["details"] = {"error_code": code}
    return {"type": "error", "error": error, "request_id": "req_01X"}


def _request_file(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "part.jsonl"
    path.write_bytes(orjson.dumps({"custom_id": "a1_x", "params": {}}) + b"\n")
    return path, body_size(path.stat().st_size)


def _assert_plain(error: APIError) -> None:
    assert error.__cause__ is None and error.__context__ is None
    assert KEY not in repr(vars(error)) and KEY not in str(error)
    blob = pickle.dumps(error)
    assert KEY.encode() not in blob and b"httpx" not in blob and b"anthropic" not in blob
    again = pickle.loads(blob)
    assert (type(again), str(again), again.kind) == (APIError, str(error), error.kind)


CASES = [
    (429, _error_body("rate_limit_error", "slow down"), {"retry-after": "7"}, ErrorKind.busy),
    (
        429,
        _error_body(
            "rate_limit_error",
            "You have reached your API usage limits",
            "enforced_spend_limit_reached",
        ),
        {},
        ErrorKind.spend_limit,
    ),
    (
        400,
        _error_body("invalid_request_error", "You have reached your specified API usage limits"),
        {},
        ErrorKind.spend_limit,
    ),
    (400, _error_body("invalid_request_error", "requests.0.custom_id: bad"), {}, ErrorKind.invalid),
    (401, _error_body("authentication_error", "invalid x-api-key"), {}, ErrorKind.auth),
    (403, _error_body("permission_error", "no"), {}, ErrorKind.auth),
    (413, _error_body("request_too_large", "too big"), {}, ErrorKind.too_large),
    (413, "<html>413 Request Entity Too Large</html>", {}, ErrorKind.too_large),
    (500, _error_body("api_error", "oops"), {}, ErrorKind.busy),
    (529, _error_body("overloaded_error", "busy"), {}, ErrorKind.busy),
    (502, "<html><body>502 Bad Gateway</body></html>", {}, ErrorKind.server),
    (504, "", {}, ErrorKind.server),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind"), CASES)
def test_every_failed_create_becomes_a_plain_api_error(
    tmp_path: Path, status: int, body: object, headers: dict[str, str], kind: ErrorKind
) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        if isinstance(body, dict):
            return httpx2.Response(status, json=body, headers={"request-id": "req_01X", **headers})
        return httpx2.Response(status, text=str(body), headers=headers)

    path, size = _request_file(tmp_path)
    with pytest.raises(APIError) as caught:
        _gateway(answer).create_from_file(path, size)
    error = caught.value
    assert (error.kind, error.status, error.endpoint) == (kind, status, "create")
    _assert_plain(error)
    if isinstance(body, dict):
        assert error.request_id == "req_01X" and error.error_type is not None
    else:
        assert error.error_type is None and "without an API error body" in error.message
    if "retry-after" in headers:
        assert error.retry_after == 7.0


def test_no_response_is_an_unknown_outcome(tmp_path: Path) -> None:
    def drop(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    path, size = _request_file(tmp_path)
    with pytest.raises(APIError) as caught:
        _gateway(drop).create_from_file(path, size)
    assert caught.value.kind is ErrorKind.no_response and caught.value.outcome_unknown
    _assert_plain(caught.value)


def test_a_cut_results_stream_is_a_plain_api_error(
    make_api: Callable[..., Api], make_job: Callable[..., Job], tmp_path: Path
) -> None:
    api = make_api(faults={"results_cut_after": 1})
    job = make_job([3])
    file = job.files[0]
    batch = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    api.admin.force_end(batch.id)
    with pytest.raises(APIError) as caught:
        api.gateway.download_results(batch.id, tmp_path / "out.jsonl")
    assert (caught.value.kind, caught.value.endpoint) == (ErrorKind.no_response, "results")
    assert caught.value.__context__ is None


@pytest.mark.parametrize("endpoint", ["retrieve", "list", "cancel", "count_tokens", "results"])
def test_every_endpoint_converts_its_errors(
    api: Api, make_job: Callable[..., Job], tmp_path: Path, endpoint: str
) -> None:
    job = make_job([2])
    file = job.files[0]
    batch = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    api.admin.force_end(batch.id)
    ended = api.gateway.retrieve(batch.id)
    api.faults(http=[(endpoint, 529, 10)])
    calls: dict[str, Callable[[], object]] = {
        "retrieve": lambda: api.gateway.retrieve(batch.id),
        "list": lambda: list(api.gateway.iter_recent(ended.created_at)),
        "cancel": lambda: api.gateway.cancel(batch.id),
        "count_tokens": lambda: api.gateway.count_tokens(
            {"model": "claude-sonnet-5", "messages": [{"role": "user", "content": "hi"}]}
        ),
        "results": lambda: api.gateway.download_results(batch.id, tmp_path / "r", batch=ended),
    }
    with pytest.raises(APIError) as caught:
        calls[endpoint]()
    error = caught.value
    assert (error.endpoint, error.status, error.kind) == (endpoint, 529, ErrorKind.busy)
    assert error.transient and error.__cause__ is None and error.__context__ is None
