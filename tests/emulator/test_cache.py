"""Prompt-cache accounting: cold batches, later reads, TTLs, minimum prefix, Messages vs batch."""

from __future__ import annotations

from typing import Any

import anthropic

from halfrate_emulator import EmulatorServer

from .helpers import request

SYSTEM = "You label customer messages. " * 300  # 8,700 chars
SYSTEM_TOKENS = 2175  # about four characters per token
TOOL = {"name": "label", "description": "d " * 2000, "input_schema": {"type": "object"}}


def cached_system(ttl: str = "5m") -> list[dict[str, Any]]:
    return [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": ttl}}]


def run_batch(
    server: EmulatorServer, client: anthropic.Anthropic, items: list[Any]
) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=items)
    server.admin.force_end(batch.id)
    usages = {}
    for result in client.messages.batches.results(batch.id):
        assert result.result.type == "succeeded"
        usages[result.custom_id] = result.result.message.usage
    return usages


def split(usage: Any) -> tuple[int, int, int, int]:
    creation = usage.cache_creation
    assert usage.cache_creation_input_tokens == (
        creation.ephemeral_5m_input_tokens + creation.ephemeral_1h_input_tokens
    )
    return (
        usage.cache_read_input_tokens,
        creation.ephemeral_5m_input_tokens,
        creation.ephemeral_1h_input_tokens,
        usage.input_tokens,
    )


def test_cold_batch_writes_then_a_later_batch_reads(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    items = [
        request(f"r{i}", "Hello!", model="claude-opus-5", system=cached_system()) for i in range(3)
    ]
    first = run_batch(server, client, items)
    assert {split(u) for u in first.values()} == {(0, SYSTEM_TOKENS, 0, 2)}
    assert {u.service_tier for u in first.values()} == {"batch"}
    second = run_batch(server, client, items)
    assert {split(u) for u in second.values()} == {(SYSTEM_TOKENS, 0, 0, 2)}


def test_ttl_expiry_and_1h_versus_5m_split(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    tool = TOOL | {"cache_control": {"type": "ephemeral", "ttl": "1h"}}
    params = {"model": "claude-opus-5", "tools": [tool], "system": cached_system("5m")}
    tool_tokens = run_batch(server, client, [request("a", "Hi there", **params)])["a"]
    read, write_5m, write_1h, uncached = split(tool_tokens)
    assert read == 0 and write_5m == SYSTEM_TOKENS and write_1h > 1000 and uncached == 2
    server.admin.advance_clock(301)
    later = run_batch(server, client, [request("b", "Hi there", **params)])["b"]
    assert split(later) == (write_1h, SYSTEM_TOKENS, 0, 2)
    server.admin.advance_clock(3601)
    expired = run_batch(server, client, [request("c", "Hi there", **params)])["c"]
    assert split(expired) == (0, SYSTEM_TOKENS, write_1h, 2)


def test_reads_refresh_the_ttl(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    item = [request("a", "x", model="claude-opus-5", system=cached_system())]
    run_batch(server, client, item)
    for _ in range(3):  # 4 minutes apart: each read keeps the 5m entry alive
        server.admin.advance_clock(240)
        assert split(run_batch(server, client, item)["a"])[0] == SYSTEM_TOKENS


def test_prefix_under_the_model_minimum_is_not_cached(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    haiku = [request("a", "x", model="claude-haiku-4-5", system=cached_system())]  # needs 4096
    for _ in range(2):
        assert split(run_batch(server, client, haiku)["a"]) == (0, 0, 0, SYSTEM_TOKENS + 1)
    sonnet = [request("a", "x", model="claude-sonnet-4-5", system=cached_system())]  # needs 1024
    assert split(run_batch(server, client, sonnet)["a"]) == (0, SYSTEM_TOKENS, 0, 1)


def test_exact_prefix_match_and_model_scoping(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    run_batch(server, client, [request("a", "x", model="claude-opus-5", system=cached_system())])
    changed = [{"type": "text", "text": SYSTEM + ".", "cache_control": {"type": "ephemeral"}}]
    other_text = run_batch(
        server, client, [request("a", "x", model="claude-opus-5", system=changed)]
    )
    assert split(other_text["a"])[0] == 0
    other_model = run_batch(
        server, client, [request("a", "x", model="claude-fable-5", system=cached_system())]
    )
    assert split(other_model["a"])[0] == 0


def test_top_level_automatic_breakpoint(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    auto = {"model": "claude-opus-5", "system": SYSTEM, "cache_control": {"type": "ephemeral"}}
    first = run_batch(server, client, [request("a", "question", **auto)])["a"]
    assert split(first) == (0, SYSTEM_TOKENS + 2, 0, 0)
    second = run_batch(server, client, [request("a", "question", **auto)])["a"]
    assert split(second) == (SYSTEM_TOKENS + 2, 0, 0, 0)


def test_messages_and_batches_share_one_way(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    sync = client.messages.create(
        model="claude-opus-5", max_tokens=50, system=cached_system(), messages=messages
    )  # type: ignore[arg-type]
    assert split(sync.usage) == (0, SYSTEM_TOKENS, 0, 1)
    assert sync.usage.service_tier == "standard"
    item = [request("a", "Hi", model="claude-opus-5", system=cached_system())]
    from_batch = run_batch(server, client, item)["a"]
    assert split(from_batch) == (0, SYSTEM_TOKENS, 0, 1)  # batches do not read Messages writes
    again = client.messages.create(
        model="claude-opus-5", max_tokens=50, system=cached_system(), messages=messages
    )  # type: ignore[arg-type]
    assert split(again.usage) == (SYSTEM_TOKENS, 0, 0, 1)


def test_count_tokens_matches_usage_total(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    counted = client.messages.count_tokens(
        model="claude-opus-5",
        system=cached_system(),
        messages=[{"role": "user", "content": "Hi"}],  # type: ignore[arg-type]
    )
    usage = run_batch(
        server, client, [request("a", "Hi", model="claude-opus-5", system=cached_system())]
    )["a"]
    total = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    assert counted.input_tokens == total == SYSTEM_TOKENS + 1


def test_lookback_finds_an_earlier_prefix_within_20_blocks(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    run_batch(server, client, [request("a", "x", model="claude-opus-5", system=cached_system())])
    question = "please label this long message " * 100  # 3,100 chars = 775 tokens
    later = [
        {
            "role": "user",
            "content": [{"type": "text", "text": question, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    plain_system = [{"type": "text", "text": SYSTEM}]
    near = run_batch(
        server, client, [request("b", model="claude-opus-5", system=plain_system, messages=later)]
    )
    assert split(near["b"]) == (SYSTEM_TOKENS, 775, 0, 0)
    filler = [{"type": "text", "text": f"note {i}"} for i in range(25)]
    far_content = [
        *filler,
        {"type": "text", "text": question, "cache_control": {"type": "ephemeral"}},
    ]
    far = [{"role": "user", "content": far_content}]
    beyond = run_batch(
        server, client, [request("c", model="claude-opus-5", system=plain_system, messages=far)]
    )
    assert split(beyond["c"])[0] == 0  # the system prefix is more than 20 blocks back
