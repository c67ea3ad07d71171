"""The deterministic fake model: turns Messages `params` into a `Message` object.

It is a stand-in, not a model. Same params, same reply: plain text echoes the prompt, a
`output_config.format` JSON schema yields schema-valid JSON, and a forced (or `any`) tool choice
yields a `tool_use` block whose input fits the tool's `input_schema`.
"""

from __future__ import annotations

from typing import Any

import orjson

from halfrate_emulator.cache import CacheUsage, estimate_tokens
from halfrate_emulator.ids import derived_id
from halfrate_emulator.schema import build_instance, choose


def last_user_text(params: dict[str, Any]) -> str:
    """The text of the last user message (what enum choices are steered by)."""
    for message in reversed(params.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _forced_tool(params: dict[str, Any], text: str) -> dict[str, Any] | None:
    choice = params.get("tool_choice")
    tools = [t for t in params.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    if not isinstance(choice, dict) or not tools:
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    if choice.get("type") == "any":
        by_name = {str(t["name"]): t for t in tools}
        return by_name[choose(sorted(by_name), text)]
    return None


def _json_schema(params: dict[str, Any]) -> dict[str, Any] | None:
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _plain_reply(text: str) -> str:
    words = text.split(maxsplit=24)
    gist = " ".join(words[:24]) + (" …" if len(words) > 24 else "")
    return f"[halfrate emulator: deterministic reply, not a model] You wrote: {gist}"


def _text_content(
    params: dict[str, Any], reply: str
) -> tuple[list[dict[str, Any]], str, str | None, int]:
    """A text block cut at stop sequences or `max_tokens`, its stop_reason and token count."""
    stop_reason, stop_sequence = "end_turn", None
    for sequence in params.get("stop_sequences") or []:
        if isinstance(sequence, str) and sequence and sequence in reply:
            reply, stop_reason, stop_sequence = (
                reply.split(sequence, 1)[0],
                "stop_sequence",
                sequence,
            )
            break
    tokens = estimate_tokens(reply)
    if tokens > params["max_tokens"]:
        reply, tokens, stop_reason = (
            reply[: params["max_tokens"] * 4],
            params["max_tokens"],
            "max_tokens",
        )
    return [{"type": "text", "text": reply, "citations": None}], stop_reason, stop_sequence, tokens


def _content(
    params: dict[str, Any], seed: str
) -> tuple[list[dict[str, Any]], str, str | None, int]:
    text = last_user_text(params)
    tool = _forced_tool(params, text)
    if tool is not None:
        schema = tool.get("input_schema") if isinstance(tool.get("input_schema"), dict) else {}
        tool_input = build_instance(schema or {"type": "object"}, text)
        block = {"type": "tool_use", "id": derived_id("toolu", seed), "name": tool["name"]}
        block["input"] = tool_input if isinstance(tool_input, dict) else {}
        tokens = estimate_tokens(orjson.dumps(block["input"]).decode()) + 10
        reason = "tool_use" if tokens <= params["max_tokens"] else "max_tokens"
        return [block], reason, None, min(tokens, params["max_tokens"])
    schema = _json_schema(params)
    if schema is not None:
        return _text_content(params, orjson.dumps(build_instance(schema, text)).decode())
    return _text_content(params, _plain_reply(text))


def respond(
    params: dict[str, Any], seed: str, cache: CacheUsage, service_tier: str
) -> dict[str, Any]:
    """Build the `Message` for validated `params`; `seed` makes its ids (e.g. batch + custom_id)."""
    content, stop_reason, stop_sequence, output_tokens = _content(params, seed)
    usage = cache.usage_fields() | {
        "output_tokens": output_tokens,
        "inference_geo": None,
        "output_tokens_details": None,
        "server_tool_use": None,
        "service_tier": service_tier,
        "speed": None,
    }
    return {
        "id": derived_id("msg", seed),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": None,
        "usage": usage,
        "container": None,
        "diagnostics": None,
    }
