"""The gateway: client factory, streamed create body, no create retries, status-call retries."""

from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx2
import orjson
import pytest
from apitools import Api, Job

from halfrate.errors import APIError, ErrorKind
from halfrate.gateway import (
    BatchGateway,
    MissingAPIKeyError,
    RequestBody,
    RequestFileError,
    body_size,
    check_request_file,
    make_client,
    shared_gateway,
)
from halfrate.settings import Settings
from halfrate_emulator import FaultConfig, HttpFault


def test_make_client_without_key_says_how_to_fix() -> None:
    with pytest.raises(MissingAPIKeyError, match=r"ANTHROPIC_API_KEY is not set.*halfrate demo"):
        make_client(Settings())


def test_make_client_uses_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    client = make_client(Settings(), max_retries=5)
    assert str(client.base_url).startswith("http://127.0.0.1:9")
    assert client.api_key == "sk-test-secret"
    assert client.max_retries == 5
    assert "sk-test-secret" not in repr(Settings())


def test_one_gateway_per_key_and_endpoint_in_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-one")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    first = shared_gateway(Settings())
    assert shared_gateway(Settings()) is first  # steps and polls share its connections
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-two")
    assert shared_gateway(Settings()) is not first
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-one")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:10")
    assert shared_gateway(Settings()) is not first


def test_an_accepted_key_is_checked_once_a_minute(api: Api) -> None:
    now = [100.0]
    gateway = BatchGateway(api.client, monotonic=lambda: now[0])
    gateway.check_key()
    gateway.check_key()  # the CLI's check, then the run's preflight: one call
    assert api.wire.count("GET", "/v1/messages/batches") == 1
    now[0] += 61
    gateway.check_key()
    assert api.wire.count("GET", "/v1/messages/batches") == 2
    api.admin.set_faults(FaultConfig(http=(HttpFault(endpoint="list", status=401, count=2),)))
    now[0] += 61
    for calls in (3, 4):  # a refused key is asked about again, never remembered as accepted
        with pytest.raises(APIError):
            gateway.check_key()
        assert api.wire.count("GET", "/v1/messages/batches") == calls


@pytest.mark.parametrize("block_size", [1, 7, 64, 1 << 20])
def test_request_body_is_the_lines_joined_in_a_requests_array(
    tmp_path: Path, block_size: int
) -> None:
    lines = [orjson.dumps({"custom_id": f"a1_{i}", "params": {"x": "é\n" * i}}) for i in range(5)]
    path = tmp_path / "part.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    body = RequestBody(path, block_size=block_size)
    sent = b"".join(body)
    assert sent == b'{"requests":[' + b",".join(lines) + b"]}"
    assert len(sent) == body.size == body_size(path.stat().st_size)
    assert b"".join(body) == sent  # re-iterable
    assert [r["custom_id"] for r in orjson.loads(sent)["requests"]] == [f"a1_{i}" for i in range(5)]


@pytest.mark.parametrize("data", [b'{"a":1}\n\n{"b":2}\n', b'\n{"a":1}\n'])
def test_request_body_refuses_a_blank_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "part.jsonl"
    path.write_bytes(data)
    with pytest.raises(RequestFileError, match=r"part\.jsonl: blank line"):
        b"".join(RequestBody(path, block_size=4))


def test_check_request_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "part-0001.jsonl"
    path.write_bytes(b'{"custom_id":"a1_x","params":{}}\n')
    check_request_file(path, body_size(path.stat().st_size))
    with pytest.raises(RequestFileError, match=r"part-0001\.jsonl.*changed after it was built"):
        check_request_file(path, body_size(path.stat().st_size) + 1)
    path.write_bytes(b'{"custom_id":"a1_x","params":{}}')  # no final newline
    with pytest.raises(RequestFileError, match="end with a newline"):
        check_request_file(path, body_size(path.stat().st_size))
    with pytest.raises(RequestFileError, match="missing"):
        check_request_file(tmp_path / "gone.jsonl", 100)


def test_create_streams_the_file_as_the_body(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([7])
    file = job.files[0]
    batch = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 7
    [entry] = api.admin.audit(custom_ids=True)
    assert entry["batch_id"] == batch.id
    assert entry["bytes"] == file.body_bytes
    assert entry["custom_ids"] == job.custom_ids(file)


def test_create_is_never_retried_by_the_sdk(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([3])
    file = job.files[0]
    api.faults(http=[("create", 500, 1)])
    with pytest.raises(APIError) as caught:
        api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    assert (caught.value.status, caught.value.kind) == (500, ErrorKind.busy)
    assert api.wire.creates() == [("POST", "/v1/messages/batches", "0")]
    assert api.admin.audit() == []


def test_create_refuses_a_changed_file_before_sending(
    api: Api, make_job: Callable[..., Job]
) -> None:
    job = make_job([3])
    file = job.files[0]
    (job.paths.root / file.path).write_bytes(b'{"custom_id":"a1_x","params":{}}\n')
    with pytest.raises(RequestFileError, match="changed after it was built"):
        api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    assert api.wire.creates() == []


def test_status_calls_survive_429_529_and_500(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([4])
    file = job.files[0]
    batch = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    api.admin.force_end(batch.id)
    api.faults(http=[("retrieve", 429, 1), ("retrieve", 529, 1), ("list", 500, 2)])
    assert api.gateway.retrieve(batch.id).processing_status == "ended"
    assert [b.id for b in api.gateway.iter_recent(batch.created_at)] == [batch.id]
    api.faults(http=[("results", 529, 1), ("results", 500, 1)])
    written = api.gateway.download_results(batch.id, job.paths.root / "out.jsonl")
    assert written == (job.paths.root / "out.jsonl").stat().st_size > 0
    assert api.wire.count("GET", "/results") == 3


def test_a_404_right_after_create_is_retried(
    make_api: Callable[..., Api], make_job: Callable[..., Job]
) -> None:
    api: Api = make_api(faults={"transient_404": 2})
    job = make_job([2])
    file = job.files[0]
    batch = api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes)
    assert api.gateway.retrieve(batch.id).id == batch.id
    assert api.sleeps.delays == [0.5, 1.0]


def test_a_404_for_an_old_batch_is_not_retried(api: Api) -> None:
    with pytest.raises(APIError) as caught:
        api.gateway.retrieve("msgbatch_01AAAAAAAAAAAAAAAAAAAAAA", created_at="2026-01-01T00:00:00Z")
    assert caught.value.kind is ErrorKind.not_found
    assert api.sleeps.delays == []


def test_iter_recent_stops_at_since_and_pages(api: Api, make_job: Callable[..., Job]) -> None:
    job = make_job([1])
    file = job.files[0]
    ids = []
    for _ in range(4):
        ids.append(api.gateway.create_from_file(job.paths.root / file.path, file.body_bytes).id)
        api.admin.advance_clock(1)
    first = api.gateway.retrieve(ids[0]).created_at
    assert [b.id for b in api.gateway.iter_recent(first, page_size=1)] == ids[::-1]
    assert api.wire.count("GET", "/v1/messages/batches") == 4  # one page per batch
    third = api.gateway.retrieve(ids[2]).created_at
    lists = api.wire.count("GET", "/v1/messages/batches")
    assert [b.id for b in api.gateway.iter_recent(third, page_size=1)] == ids[:1:-1]
    assert api.wire.count("GET", "/v1/messages/batches") - lists == 3  # stopped at the 3rd page


def test_results_url_on_another_host_is_fetched_from_the_base_url(tmp_path: Path) -> None:
    seen: list[str] = []
    batch = {
        "id": "msgbatch_1",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 1,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2026-11-24T06:00:00Z",
        "expires_at": "2026-11-25T06:00:00Z",
        "ended_at": "2026-11-24T06:01:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/results"):
            return httpx2.Response(200, content=b'{"custom_id":"a1_x"}\n')
        return httpx2.Response(200, json=batch)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="k", base_url="http://proxy.local/api", http_client=http)
    dest = tmp_path / "out.jsonl"
    assert BatchGateway(client).download_results("msgbatch_1", dest) == 21
    assert seen == [
        "http://proxy.local/api/v1/messages/batches/msgbatch_1",
        "http://proxy.local/api/v1/messages/batches/msgbatch_1/results",
    ]
    assert dest.read_bytes() == b'{"custom_id":"a1_x"}\n'


def test_the_wire_carries_the_exact_body_and_length(tmp_path: Path) -> None:
    received: list[httpx2.Request] = []
    bodies: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        received.append(request)
        bodies.append(request.read())
        return httpx2.Response(
            500, json={"type": "error", "error": {"type": "api_error", "message": "x"}}
        )

    lines = [orjson.dumps({"custom_id": f"a1_{i}", "params": {"n": i}}) for i in range(3)]
    path = tmp_path / "part.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="k", base_url="http://fake.local", http_client=http)
    with pytest.raises(APIError, match="500 api_error"):
        BatchGateway(client).create_from_file(path, body_size(path.stat().st_size))
    [request] = received  # one attempt although the client allows 2 retries
    assert client.max_retries == 2
    assert bodies == [b'{"requests":[' + b",".join(lines) + b"]}"]
    assert request.headers["content-length"] == str(len(bodies[0]))
    assert "transfer-encoding" not in request.headers
    assert request.headers["authorization"] == "Bearer k"


def test_count_tokens_takes_a_request_lines_params(api: Api) -> None:
    params = {
        "model": "claude-sonnet-5",
        "max_tokens": 16,
        "system": [{"type": "text", "text": "Label the message. " * 50}],
        "messages": [{"role": "user", "content": "my card was charged twice"}],
    }
    tokens = api.gateway.count_tokens(params)
    assert tokens > api.gateway.count_tokens({**params, "system": "Label."}) > 0
