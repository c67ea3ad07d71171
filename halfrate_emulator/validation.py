"""Deep validation of `params` (Messages create parameters).

For a batch, the API validates params asynchronously, so a problem found here becomes an
`errored` result with `invalid_request_error`; for `POST /v1/messages` it is a synchronous 400.
"""

from __future__ import annotations

from typing import Any

from halfrate_emulator.media import check_block, is_media
from halfrate_emulator.models import is_known_model

VERSION_2023 = "2023-06-01"
VERSION_2026 = "2026-10-21"
SUPPORTED_VERSIONS = (VERSION_2023, VERSION_2026)

KNOWN_PARAMS = frozenset(
    {
        "model", "max_tokens", "messages", "cache_control", "container", "diagnostics",
        "inference_geo", "metadata", "output_config", "service_tier", "speed",
        "stop_sequences", "stream", "system", "thinking", "tool_choice", "tools",
        "user_profile_id", "workspace_id", "temperature", "top_p", "top_k",
    }
)  # fmt: skip
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
NOT_IN_BATCH = (
    "speed", "store", "previous_thread_event_id", "cache_hint", "context_hint",
    "research_preview_2026_02",
)  # fmt: skip
MAX_BREAKPOINTS = 4


def check_params(params: dict[str, Any], version: str, in_batch: bool) -> str | None:
    """Return the API's error message for invalid `params`, or None when they are valid."""
    for check in (_check_keys, _check_required, _check_messages, _check_tools):
        problem = check(params, version, in_batch)
        if problem:
            return problem
    return None


def _check_keys(params: dict[str, Any], version: str, in_batch: bool) -> str | None:
    if in_batch:
        if params.get("stream") is True:
            return "stream: Batch requests do not support streaming; results come back as a file."
        for key in NOT_IN_BATCH:
            if key in params:
                return f"{key}: This parameter is not supported in Message Batches requests."
    if version == VERSION_2026:
        for key in SAMPLING_PARAMS:
            if key in params:
                return f"{key}: Extra inputs are not permitted"
    for key in params:
        if key not in KNOWN_PARAMS:
            return f"{key}: Extra inputs are not permitted"
    return None


def _check_required(params: dict[str, Any], version: str, in_batch: bool) -> str | None:
    for key in ("model", "max_tokens", "messages"):
        if key not in params:
            return f"{key}: Field required"
    model, max_tokens = params["model"], params["max_tokens"]
    if not isinstance(model, str):
        return "model: Input should be a valid string"
    if not is_known_model(model):
        return f"model: {model}"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    return None


def _check_messages(params: dict[str, Any], version: str, in_batch: bool) -> str | None:
    messages = params["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            return f"{where}: Input should be a valid dictionary"
        if message.get("role") not in ("user", "assistant"):
            return f"{where}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"{where}.content: Input should be a valid string or list"
        if isinstance(content, list) and not all(isinstance(b, dict) for b in content):
            return f"{where}.content: Input should be a valid list of content blocks"
        for number, block in enumerate(content if isinstance(content, list) else []):
            problem = check_block(f"{where}.content.{number}", block) if is_media(block) else None
            if problem:
                return problem
    system = params.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list"
    return None


def _check_tools(params: dict[str, Any], version: str, in_batch: bool) -> str | None:
    tools = params.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
    ):
        return "tools: Input should be a valid list of tools"
    choice = params.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        names = {t.get("name") for t in tools or []}
        if choice.get("name") not in names:
            return f"tool_choice.name: Tool '{choice.get('name')}' not found in tools"
    found = count_breakpoints(params)
    if found > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return None


def count_breakpoints(params: dict[str, Any]) -> int:
    """Number of cache_control markers, the automatic top-level one included."""
    found = 1 if isinstance(params.get("cache_control"), dict) else 0
    blocks: list[Any] = list(params.get("tools") or [])
    if isinstance(params.get("system"), list):
        blocks += params["system"]
    for message in params.get("messages") or []:
        if isinstance(message.get("content"), list):
            blocks += message["content"]
    return found + sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control"))
