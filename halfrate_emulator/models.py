"""The model ids the emulator knows, and each one's minimum cacheable prompt length."""

from __future__ import annotations

import re

_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")

# Minimum cacheable prefix in tokens (reference section 7). Models the docs do not list get the
# value of their family: 5.x Opus/Fable/Mythos behave like Opus 5, Sonnet 5.5 like Sonnet 5, and
# Haiku 5.5 sits between Haiku 4.5 and Sonnet.
MIN_CACHEABLE: dict[str, int] = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-opus-5-5": 512,
    "claude-fable-5-1": 512,
    "claude-fable-5-2": 512,
    "claude-mythos-5-1": 512,
    "claude-mythos-5-2": 512,
    "claude-sonnet-5": 1024,
    "claude-sonnet-5-5": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-8": 1024,
    "claude-opus-4-7": 2048,
    "claude-mythos-preview": 2048,
    "claude-haiku-5-5": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
}
DEFAULT_MIN_CACHEABLE = 1024


def base_model(model: str) -> str:
    """Strip a date suffix: `claude-haiku-4-5-20251001` -> `claude-haiku-4-5`."""
    match = _DATED.match(model)
    return match.group("base") if match else model


def is_known_model(model: str) -> bool:
    """True for the model ids anthropic 2.10.0 lists (with or without a date suffix)."""
    return base_model(model) in MIN_CACHEABLE


def min_cacheable_tokens(model: str) -> int:
    """The minimum prefix length (tokens) that the model caches."""
    return MIN_CACHEABLE.get(base_model(model), DEFAULT_MIN_CACHEABLE)
