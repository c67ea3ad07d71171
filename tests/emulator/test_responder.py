"""The deterministic responder: schema-valid structured output, forced tools, limits."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest

from halfrate_emulator import EmulatorServer
from halfrate_emulator.schema import build_instance, choose, words

from .helpers import request

TICKET = {
    "type": "object",
    "properties": {
        "intent": {
            "type": "string",
            "enum": ["billing_issue", "password-reset", "shipping delay", "other"],
        },
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "needs_human": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 2},
        "customer": {"$ref": "#/$defs/customer"},
        "note": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 3}]},
        "when": {"type": "string", "format": "date-time"},
    },
    "required": [
        "intent",
        "urgency",
        "confidence",
        "needs_human",
        "tags",
        "customer",
        "note",
        "when",
    ],
    "additionalProperties": False,
    "$defs": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "tier": {"enum": ["free", "pro"]}},
            "required": ["name", "tier"],
            "additionalProperties": False,
        }
    },
}


def run(server: EmulatorServer, client: anthropic.Anthropic, items: list[Any]) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=items)
    server.admin.force_end(batch.id)
    out = {}
    for result in client.messages.batches.results(batch.id):
        assert result.result.type == "succeeded", result
        out[result.custom_id] = result.result.message
    return out


def test_structured_output_is_schema_valid_and_plausible(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    texts = {
        "pw": "I forgot my password and need to reset it",
        "ship": "My package shipping is delayed by two weeks",
        "bill": "Why was I billed twice? Billing issue on my card",
    }
    fmt = {"format": {"type": "json_schema", "schema": TICKET}}
    items = [request(k, v, output_config=fmt) for k, v in texts.items()]
    messages = run(server, client, items)
    labels = {}
    for custom_id, message in messages.items():
        assert message.stop_reason == "end_turn"
        data = json.loads(message.content[0].text)
        jsonschema.validate(data, TICKET)
        labels[custom_id] = data["intent"]
    assert labels == {"pw": "password-reset", "ship": "shipping delay", "bill": "billing_issue"}


def test_forced_tool_choice_gives_a_fitting_tool_use(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    tools = [
        {"name": "record_ticket", "description": "Save", "input_schema": TICKET},
        {"name": "other_tool", "description": "Other", "input_schema": {"type": "object"}},
    ]
    choice = {"type": "tool", "name": "record_ticket"}
    message = run(
        server, client, [request("t", "reset my password", tools=tools, tool_choice=choice)]
    )["t"]
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert (
        block.type == "tool_use"
        and block.name == "record_ticket"
        and block.id.startswith("toolu_01")
    )
    jsonschema.validate(block.input, TICKET)


def test_plain_text_is_deterministic_with_realistic_usage(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    first = run(server, client, [request("a", "Tell me about the sea")])["a"]
    second = run(server, client, [request("a", "Tell me about the sea")])["a"]
    assert first.content[0].text == second.content[0].text
    assert "not a model" in first.content[0].text
    assert first.usage.output_tokens == (len(first.content[0].text) + 3) // 4
    assert first.usage.input_tokens == 6 and first.usage.service_tier == "batch"
    assert first.id.startswith("msg_01") and first.model == "claude-haiku-4-5"


def test_max_tokens_and_stop_sequences(server: EmulatorServer, client: anthropic.Anthropic) -> None:
    items = [
        request("short", "a long question " * 20, max_tokens=3),
        request("stop", "alpha beta gamma", stop_sequences=["beta"]),
    ]
    messages = run(server, client, items)
    assert messages["short"].stop_reason == "max_tokens"
    assert messages["short"].usage.output_tokens == 3
    assert messages["stop"].stop_reason == "stop_sequence"
    assert messages["stop"].stop_sequence == "beta"
    assert "beta" not in messages["stop"].content[0].text


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
        {"type": "object", "allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}]},
        {"type": ["integer", "null"], "exclusiveMinimum": 10, "maximum": 20},
        {"type": "string", "minLength": 50, "maxLength": 60},
        {"const": "fixed"},
        {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
    ],
)
def test_instances_validate(schema: dict[str, Any]) -> None:
    jsonschema.validate(build_instance(schema, "some text"), schema)


def test_enum_choice_uses_word_overlap_and_a_stable_tiebreak() -> None:
    assert words("RefundRequest shipping-delays") == {"refund", "request", "shipp", "delay"}
    assert choose(["refund_request", "technical_problem"], "I want a refund") == "refund_request"
    tie = choose(["alpha", "beta", "gamma"], "nothing matches")
    assert all(choose(["alpha", "beta", "gamma"], "nothing matches") == tie for _ in range(5))


def test_an_unusable_schema_errors_one_request_not_the_batch(
    server: EmulatorServer, client: anthropic.Anthropic
) -> None:
    odd = {"format": {"type": "json_schema", "schema": {"type": "integer", "minimum": "low"}}}
    batch = client.messages.batches.create(
        requests=[request("odd", output_config=odd), request("fine")]
    )
    ended = server.admin.force_end(batch.id)
    assert ended["request_counts"]["errored"] == 1 and ended["request_counts"]["succeeded"] == 1
