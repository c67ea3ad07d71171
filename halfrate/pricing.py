"""Prices (from halfrate/prices.csv, kept as data) and the cost of a job before it is submitted.

Prices are standard USD per million tokens with the date they took effect; batch prices are
the same times `batch_discount` (0.5). The warehouse's job_costs view reads the same file.
"""

import csv
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

# Minimum cacheable prefix per model (shared/reference/anthropic-batches.md section 7): a
# shorter prefix is silently not cached. Models not listed get the strictest known minimum.
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-opus-4-8": 1024,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4-5-20250929": 1024,
    "claude-opus-4-7": 2048,
    "claude-mythos-preview": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-5-20251101": 4096,
    "claude-haiku-4-5": 4096,
    "claude-haiku-4-5-20251001": 4096,
}
DEFAULT_MIN_CACHEABLE_TOKENS = 4096
DEFAULT_OUTPUT_TOKENS = 16  # a label answer such as {"label":"card_arrival"}


class Price(BaseModel):
    """One row of prices.csv: standard prices in USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    effective_from: date
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float | None
    cache_read: float
    batch_discount: float
    source: str


class CostEstimate(BaseModel):
    """A job's cost range before submitting; `assumptions` spells out how it was reckoned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    priced_on: date
    price: Price | None
    n_requests: int
    billed_requests: int
    cache_used: bool
    min_cacheable_tokens: int
    batch_cost_usd_low: float | None
    batch_cost_usd_high: float | None
    realtime_cost_usd_low: float | None
    realtime_cost_usd_high: float | None
    savings_usd_low: float | None
    savings_usd_high: float | None
    assumptions: list[str]


@cache
def price_table() -> tuple[Price, ...]:
    """Every row of halfrate/prices.csv."""
    text = (resources.files("halfrate") / "prices.csv").read_text(encoding="utf-8")
    rows = []
    for number, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            rows.append(Price.model_validate({k: v if v != "" else None for k, v in row.items()}))
        except ValueError as exc:
            raise ValueError(f"halfrate/prices.csv line {number}: {exc}") from None
    return tuple(rows)


def price_for(model: str, on: date | None = None) -> Price | None:
    """The price of `model` in effect on `on` (today, UTC, by default); None if unknown."""
    day = on or datetime.now(UTC).date()
    candidates = [p for p in price_table() if p.model == model and p.effective_from <= day]
    return max(candidates, key=lambda p: p.effective_from, default=None)


def estimate_cost(
    model: str,
    n_requests: int,
    prefix_tokens: int,
    mean_input_tokens: float,
    max_tokens: int,
    cache_ttl: str,
    primed: bool,
    expected_output_tokens: float | None = None,
    on: date | None = None,
    min_cacheable_tokens: int | None = None,
) -> CostEstimate:
    """Cost range of `n_requests` sharing a `prefix_tokens` prefix, at batch and standard prices.

    low: cache hits after a single write (the prime request, or the first request), and
    `expected_output_tokens` (default 16) per request. high: every request misses the cache
    and writes the prefix again (batch cache hits are best effort), and writes `max_tokens`.
    """
    if n_requests < 0 or prefix_tokens < 0 or mean_input_tokens < 0 or max_tokens < 1:
        raise ValueError(
            "n_requests, prefix_tokens and mean_input_tokens must be >= 0, max_tokens >= 1"
        )
    if cache_ttl not in ("none", "5m", "1h"):
        raise ValueError(f"cache_ttl {cache_ttl!r}: expected none, 5m or 1h")
    day = on or datetime.now(UTC).date()
    price = price_for(model, day)
    minimum = min_cacheable_tokens or MIN_CACHEABLE_TOKENS.get(model, DEFAULT_MIN_CACHEABLE_TOKENS)
    cache_used = cache_ttl != "none" and prefix_tokens >= minimum and n_requests > 0
    prime = 1 if primed and n_requests > 0 else 0
    billed = n_requests + prime
    low_output = min(
        float(max_tokens),
        DEFAULT_OUTPUT_TOKENS if expected_output_tokens is None else expected_output_tokens,
    )
    assumptions = [
        f"{n_requests:,} requests" + (" + 1 cache-priming request" if prime else ""),
        f"prefix {prefix_tokens:,} tokens, other input {mean_input_tokens:,.0f} tokens per request",
        f"output: low {low_output:,.0f}, high {max_tokens:,} (max_tokens) tokens per request",
    ]
    if cache_ttl == "none":
        assumptions.append("prompt caching off: every request pays the prefix as input")
    elif not cache_used:
        assumptions.append(
            f"prefix below {model}'s minimum cacheable length ({minimum:,} tokens): "
            "not cached, every request pays it as input"
        )
    else:
        assumptions.append(
            f"cache ({cache_ttl} TTL): low = one prefix write, then every request reads it; "
            "high = every request writes it (batch cache hits are best effort)"
        )
    if price is None:
        assumptions.append(f"{model} has no price on {day} in halfrate/prices.csv: cost unknown")
        return CostEstimate(
            model=model,
            priced_on=day,
            price=None,
            n_requests=n_requests,
            billed_requests=billed,
            cache_used=cache_used,
            min_cacheable_tokens=minimum,
            batch_cost_usd_low=None,
            batch_cost_usd_high=None,
            realtime_cost_usd_low=None,
            realtime_cost_usd_high=None,
            savings_usd_low=None,
            savings_usd_high=None,
            assumptions=assumptions,
        )
    write_price = price.cache_write_1h if cache_ttl == "1h" else price.cache_write_5m
    if cache_used and write_price is None:
        raise ValueError(f"{model}: prices.csv has no {cache_ttl} cache-write price")
    input_tokens = billed * mean_input_tokens
    if cache_used:
        assert write_price is not None
        low_prefix = prefix_tokens * (write_price + (billed - 1) * price.cache_read)
        high_prefix = prefix_tokens * billed * write_price
    else:
        low_prefix = high_prefix = prefix_tokens * billed * price.input
    realtime_low = (
        input_tokens * price.input + low_prefix + billed * low_output * price.output
    ) / 1e6
    realtime_high = (
        input_tokens * price.input + high_prefix + billed * max_tokens * price.output
    ) / 1e6
    batch_low = realtime_low * price.batch_discount
    batch_high = realtime_high * price.batch_discount
    return CostEstimate(
        model=model,
        priced_on=day,
        price=price,
        n_requests=n_requests,
        billed_requests=billed,
        cache_used=cache_used,
        min_cacheable_tokens=minimum,
        batch_cost_usd_low=batch_low,
        batch_cost_usd_high=batch_high,
        realtime_cost_usd_low=realtime_low,
        realtime_cost_usd_high=realtime_high,
        savings_usd_low=realtime_low - batch_low,
        savings_usd_high=realtime_high - batch_high,
        assumptions=assumptions,
    )
