"""State survives a restart: in-process stop/start, and a SIGKILLed CLI process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import pytest

from halfrate_emulator import EmulatorAdmin

from .conftest import MakeServer
from .helpers import request

READY = re.compile(r"emulator listening on (http://\S+)")


def test_state_survives_stop_and_start(make_server: MakeServer, tmp_path: Path) -> None:
    data = tmp_path / "state"
    first = make_server(data_dir=data)
    client = anthropic.Anthropic(api_key="k", base_url=first.base_url, max_retries=0)
    system = [{"type": "text", "text": "cached " * 3000, "cache_control": {"type": "ephemeral"}}]
    ended = client.messages.batches.create(
        requests=[request("a", model="claude-opus-5", system=system)]
    )
    first.admin.force_end(ended.id)
    before = [(r.custom_id, r.result.type) for r in client.messages.batches.results(ended.id)]
    running = client.messages.batches.create(requests=[request("b")])
    clock = first.admin.advance_clock(30)
    first.stop()

    second = make_server(data_dir=data)
    client = anthropic.Anthropic(api_key="k", base_url=second.base_url, max_retries=0)
    assert second.admin.now() == pytest.approx(clock)
    assert [a["batch_id"] for a in second.admin.audit()] == [ended.id, running.id]
    assert [
        (r.custom_id, r.result.type) for r in client.messages.batches.results(ended.id)
    ] == before
    assert client.messages.batches.retrieve(running.id).processing_status == "in_progress"
    second.admin.advance_clock(30)
    assert client.messages.batches.retrieve(running.id).processing_status == "ended"
    again = client.messages.batches.create(
        requests=[request("c", model="claude-opus-5", system=system)]
    )
    second.admin.force_end(again.id)
    usage = next(iter(client.messages.batches.results(again.id))).result.message.usage  # type: ignore[union-attr]
    assert usage.cache_read_input_tokens == 5250  # the cache persisted too
    assert [b.id for b in client.messages.batches.list()] == [again.id, running.id, ended.id]


@contextmanager
def emulator_process(data_dir: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    command = [
        sys.executable,
        "-m",
        "halfrate_emulator",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
    ]
    process = subprocess.Popen(
        [*command, "--time-scale", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        match = READY.search(process.stdout.readline())
        assert match, "the emulator did not announce its URL"
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.slow
def test_cli_process_survives_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "cli-state"
    with emulator_process(data, "--fail", "list:529:1") as (process, url):
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        batch = client.messages.batches.create(requests=[request("a"), request("b")])
        with pytest.raises(anthropic.OverloadedError):
            client.messages.batches.list()
        process.send_signal(signal.SIGKILL)
    with emulator_process(data) as (process, url):
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        assert client.messages.batches.retrieve(batch.id).request_counts.processing == 2
        admin = EmulatorAdmin(url)
        assert [a["batch_id"] for a in admin.audit()] == [batch.id]
        admin.force_end(batch.id)
        assert len(list(client.messages.batches.results(batch.id))) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
