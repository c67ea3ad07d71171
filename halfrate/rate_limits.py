"""What an API answer's headers say of its rate limits: the tightest limit and retry-after."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RATE_LIMIT_PREFIX = "anthropic-ratelimit-"
RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


@dataclass(frozen=True)
class RateLimit:
    """What an answer's `anthropic-ratelimit-*` headers say of the tightest limit."""

    remaining: int | None = None
    reset_at: datetime | None = None
    """When that limit is replenished (RFC 3339 in the header)."""


@dataclass(frozen=True)
class MessageAnswer:
    """A real-time Messages call's answer, as plain data: the Message JSON and the limits."""

    message: dict[str, Any]
    rate_limit: RateLimit


def rate_limit(headers: Mapping[str, str]) -> RateLimit:
    """The tightest of the `anthropic-ratelimit-<limit>-remaining` / `-reset` pairs."""
    tightest = RateLimit()
    for name in RATE_LIMITS:
        try:
            remaining = int(headers.get(f"{RATE_LIMIT_PREFIX}{name}-remaining", ""))
        except ValueError:
            continue
        if tightest.remaining is not None and remaining >= tightest.remaining:
            continue
        reset = headers.get(f"{RATE_LIMIT_PREFIX}{name}-reset", "")
        try:
            reset_at: datetime | None = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            reset_at = None
        tightest = RateLimit(remaining, reset_at)
    return tightest


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait before calling again (`retry-after-ms`, else `retry-after`), if given."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value >= 0:
            return value / scale
    return None
