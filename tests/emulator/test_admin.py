"""Admin endpoints: token check, reset, clock, request log."""

from __future__ import annotations

import urllib.error

import anthropic
import pytest

from halfrate_emulator import EmulatorAdmin, EmulatorServer

from .conftest import MakeServer
from .helpers import raw, request


def test_admin_token_is_enforced_when_configured(make_server: MakeServer) -> None:
    server = make_server(admin_token="s3cret")
    with pytest.raises(urllib.error.HTTPError) as err:
        EmulatorAdmin(server.base_url).health()
    assert err.value.code == 401
    assert server.admin.health()["status"] == "ok"  # server.admin carries the token


def test_reset_forgets_everything(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    server.admin.advance_clock(100)
    server.admin.set_faults(transient_404=3)
    server.admin.reset()
    assert server.admin.audit() == [] and client.messages.batches.list().data == []
    assert server.admin.faults()["transient_404"] == 0
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_clock_and_request_log(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    start = server.admin.now()
    assert server.admin.advance_clock(90) == pytest.approx(start + 90)
    client.messages.batches.list()
    logged = [r for r in server.admin.requests() if r["path"] == "/v1/messages/batches"]
    assert logged[-1]["status"] == 200 and logged[-1]["retry_count"] == "0"
    assert logged[-1]["request_id"].startswith("req_01")
    with raw(server.base_url) as http:
        assert http.post("/_emulator/clock/advance", json={"seconds": -1}).status_code == 400
        assert http.post("/_emulator/batches/msgbatch_01x/explode").status_code == 404
        assert http.post("/_emulator/batches/msgbatch_01x/end").status_code == 404


def test_fixture_mode_answers_any_id(make_server: MakeServer) -> None:
    server = make_server(fixture_mode=True)
    client = anthropic.Anthropic(
        api_key="k", base_url=server.base_url, max_retries=0, _strict_response_validation=True
    )
    assert client.messages.batches.retrieve("message_batch_id").processing_status == "ended"
    assert client.messages.batches.cancel("message_batch_id").processing_status == "canceling"
    assert client.messages.batches.delete("message_batch_id").type == "message_batch_deleted"
    assert list(client.messages.batches.results("message_batch_id")) == []
    page = client.messages.batches.list(after_id="after_id", before_id="before_id", limit=1)
    assert page.data == []
