"""Prompt-cache accounting: breakpoints, prefix keys, and the usage split they produce.

The prompt is flattened in the API's cache order (tools, then system, then messages). Every
block that carries `cache_control` (and, for a top-level `cache_control`, the last block) is a
breakpoint whose key is a hash of the model plus everything up to and including that block, so
only an exact prefix match hits. Prefixes shorter than the model's minimum are never cached.
Which keys are visible (written earlier and not expired) is decided by the caller, which lets the
store implement TTLs and the "cold batch" rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from halfrate_emulator.media import block_tokens, is_media

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK_BLOCKS = 20


@dataclass(frozen=True)
class Breakpoint:
    """A cacheable prefix: its length in tokens, its key, and the TTL requested for it."""

    tokens: int
    key: str
    ttl: str
    block: int = 0


@dataclass(frozen=True)
class PromptPlan:
    """The prompt's total input tokens, its breakpoints in order, and (when it has any
    breakpoint) the (tokens, key) of the prefix ending at every block, for the lookback."""

    total_tokens: int
    breakpoints: tuple[Breakpoint, ...]
    prefixes: tuple[tuple[int, str], ...] = ()


@dataclass
class CacheUsage:
    """The cache part of `usage`, plus the entries this request writes."""

    input_tokens: int
    read_tokens: int = 0
    write_5m: int = 0
    write_1h: int = 0
    read_key: str | None = None
    writes: list[Breakpoint] = field(default_factory=list)

    def usage_fields(self) -> dict[str, Any]:
        """The `usage` keys that describe input and caching."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.write_5m + self.write_1h,
            "cache_read_input_tokens": self.read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
        }


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: about four characters per token, at least one (images
    and documents count by their own rules: halfrate_emulator/media.py)."""
    return max(1, (len(text) + 3) // 4)


def _block_text(block: Any) -> str:
    if isinstance(block, dict):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return str(block["text"])
        stripped = {k: v for k, v in block.items() if k != "cache_control"}
        return orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS).decode()
    return str(block)


def _blocks(params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(role marker, block) pairs in cache order: tools, system, then messages."""
    for tool in params.get("tools") or []:
        yield "tool", tool
    system = params.get("system")
    if isinstance(system, str) and system:
        yield "system", {"type": "text", "text": system}
    elif isinstance(system, list):
        for block in system:
            yield "system", block
    for message in params.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        role = str(message.get("role")) if isinstance(message, dict) else "user"
        if isinstance(content, str):
            yield role, {"type": "text", "text": content}
        elif isinstance(content, list):
            for block in content:
                yield role, block


def _ttl(marker: Any) -> str:
    ttl = marker.get("ttl") if isinstance(marker, dict) else None
    return ttl if ttl in TTL_SECONDS else "5m"


def plan_prompt(params: dict[str, Any]) -> PromptPlan:
    """Count the prompt's tokens and find its breakpoints (keys are only hashed if any)."""
    blocks = list(_blocks(params))
    automatic = params.get("cache_control")
    markers = [b.get("cache_control") if isinstance(b, dict) else None for _, b in blocks]
    if blocks and not markers[-1] and isinstance(automatic, dict):
        markers[-1] = automatic
    texts = [_block_text(block) for _, block in blocks]
    tokens = [
        block_tokens(block) if is_media(block) else estimate_tokens(text)
        for (_, block), text in zip(blocks, texts, strict=True)
    ]
    if not any(isinstance(m, dict) for m in markers):
        return PromptPlan(sum(tokens), ())
    digest = hashlib.sha256(str(params.get("model")).encode())
    total, points, prefixes = 0, [], []
    for index, ((role, _), text, marker) in enumerate(zip(blocks, texts, markers, strict=True)):
        digest.update(f"\x1e{role}\x1f{text}".encode())
        total += tokens[index]
        prefixes.append((total, digest.copy().hexdigest()))
        if isinstance(marker, dict):
            points.append(Breakpoint(total, prefixes[-1][1], _ttl(marker), index))
    return PromptPlan(total, tuple(points), tuple(prefixes))


def _lookup(
    plan: PromptPlan, usable: list[Breakpoint], visible: Callable[[str], bool]
) -> tuple[int, str] | None:
    """The longest visible prefix: from each breakpoint (last first), up to 20 blocks back."""
    for point in reversed(usable):
        for block in range(point.block, max(-1, point.block - LOOKBACK_BLOCKS), -1):
            if visible(plan.prefixes[block][1]):
                return plan.prefixes[block]
    return None


def account(plan: PromptPlan, min_tokens: int, visible: Callable[[str], bool]) -> CacheUsage:
    """Split the prompt into read, written (per TTL) and uncached tokens.

    The longest visible prefix within the lookback window of a breakpoint is read; every
    longer breakpoint is written, each segment billed at the TTL of the breakpoint that ends
    it; the rest is plain input. Prefixes under the model's minimum are never written.
    """
    usable = [bp for bp in plan.breakpoints if bp.tokens >= min_tokens]
    usage = CacheUsage(input_tokens=plan.total_tokens)
    found = _lookup(plan, usable, visible)
    if found is not None:
        usage.read_tokens, usage.read_key = found
    covered = usage.read_tokens
    for point in usable:
        if point.tokens <= covered:
            continue
        segment = point.tokens - covered
        if point.ttl == "1h":
            usage.write_1h += segment
        else:
            usage.write_5m += segment
        usage.writes.append(point)
        covered = point.tokens
    usage.input_tokens = plan.total_tokens - covered
    return usage
