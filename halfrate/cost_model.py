"""The cost model behind the estimate: a low, an expected and a high cost, priced per band.

Pure: it takes what was measured (a `TokenProfile` and every row's token estimate) and prices
three scenarios, each request at the price band its prompt falls in (prices.csv):

- low: the cheapest bill these requests can make. The cache is written once per TTL window and
  per model, not per request, so it may already be warm (a priming batch or an earlier job with
  the same prefix): every request reads the prefix. Rows at their low token estimate, and the
  shortest possible answer.
- expected: what halfrate's own plan leads to. With a priming batch, its one request writes the
  prefix and every other request reads it. Without one, the requests of a batch do not see each
  other's writes, so every request writes it. Rows as estimated, answers of average length.
- high: every request writes the prefix (batch cache hits are best effort), rows at their high
  estimate, and `max_tokens` of output per request.

A scenario that needs a price prices.csv does not publish (e.g. a 1h cache write in a band
whose price is unknown) has no cost (None), and `unpriced` says why: never understated.
"""

from datetime import UTC, date, datetime

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from halfrate.pricing import Price, band_for, min_cacheable_tokens, price_list

SCENARIOS = ("low", "expected", "high")


class TokenProfile(BaseModel):
    """What is known of a job's tokens before anything is sent (per request)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix_tokens: float = Field(ge=0, description="The shared, cacheable prefix.")
    prefix_range: tuple[float, float] = Field((1.0, 1.0), description="Low/high factors on it.")
    row_range: tuple[float, float] = Field((1.0, 1.0), description="Low/high factors on rows.")
    output_tokens: tuple[float, float, float] = Field(description="Low, expected, high output.")
    counted: bool = Field(True, description="False: a rough estimate from characters.")
    notes: tuple[str, ...] = ()


class Bracket(BaseModel):
    """One figure in the three scenarios; None where a price is unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float | None
    expected: float | None
    high: float | None


class CostEstimate(BaseModel):
    """A job's cost before it is submitted, with how it was reckoned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    priced_on: date
    n_requests: int
    cache_ttl: str
    min_cacheable_tokens: int
    cache_used: bool
    prime: bool
    prime_reason: str
    profile: TokenProfile
    long_context_requests: tuple[int, int, int]
    batch: Bracket
    realtime: Bracket
    unpriced: tuple[str, ...]
    assumptions: tuple[str, ...]

    @property
    def savings(self) -> Bracket:
        """What batching saves against the real-time equivalent, in each scenario."""

        def saved(realtime: float | None, batch: float | None) -> float | None:
            return None if realtime is None or batch is None else realtime - batch

        r, b = self.realtime, self.batch
        return Bracket(
            low=saved(r.low, b.low),
            expected=saved(r.expected, b.expected),
            high=saved(r.high, b.high),
        )


def plan_prime(
    requested: bool, cache_ttl: str, n_requests: int, profile: TokenProfile, model: str
) -> tuple[bool, str]:
    """Whether to send the first row alone as a priming batch, and why (or why not)."""
    minimum = min_cacheable_tokens(model)
    longest = profile.prefix_tokens * profile.prefix_range[1]
    if not requested:
        return False, "not sent: prime_cache is off"
    if cache_ttl == "none":
        return False, "not sent: prompt caching is off (cache_ttl: none)"
    if n_requests < 2:
        return False, "not sent: fewer than two rows, so no request would read the cache"
    if longest < minimum:
        return False, (
            f"skipped: the shared prefix ({profile.prefix_tokens:,.0f} tokens) is below "
            f"{model}'s minimum cacheable length ({minimum:,} tokens), so the cache will not "
            "be used and a priming batch would only add a batch and a wait"
        )
    return True, "sent first: the first row alone, so the main batches read a warm cache"


def estimate_cost(
    model: str,
    row_tokens: pl.Series,
    profile: TokenProfile,
    cache_ttl: str,
    prime: bool,
    prime_reason: str = "",
    on: date | None = None,
) -> CostEstimate:
    """Price `len(row_tokens)` requests (each row's uncached input tokens) in three scenarios.

    `prime`: the first request is sent alone first (it writes the cache, the rest read it);
    `prime_reason` says why it is sent or not (see `plan_prime`).
    """
    if cache_ttl not in ("none", "5m", "1h"):
        raise ValueError(f"cache_ttl {cache_ttl!r}: expected none, 5m or 1h")
    if row_tokens.len() and (row_tokens.min() or 0) < 0:  # type: ignore[operator]
        raise ValueError("row_tokens must be >= 0")
    day = on or datetime.now(UTC).date()
    bands = price_list(model, day)
    minimum = min_cacheable_tokens(model)
    p = profile.prefix_tokens
    cache_used = cache_ttl != "none" and p >= minimum
    cache_possible = cache_ttl != "none" and p * profile.prefix_range[1] >= minimum
    rows = row_tokens.cast(pl.Float64)
    cached = (cache_possible, cache_used, cache_possible)  # low, expected, high
    results = [
        _scenario(kind, bands, rows, profile, cache_ttl, cached[i], cache_used and prime, i)
        for i, kind in enumerate(SCENARIOS)
    ]
    unpriced = tuple(dict.fromkeys(r for s in results for r in s.unpriced))
    if not bands:
        unpriced = (f"{model} has no price on {day} in halfrate/prices.csv",)
    return CostEstimate(
        model=model,
        priced_on=day,
        n_requests=rows.len(),
        cache_ttl=cache_ttl,
        min_cacheable_tokens=minimum,
        cache_used=cache_used,
        prime=prime,
        prime_reason=prime_reason,
        profile=profile,
        long_context_requests=(results[0].long, results[1].long, results[2].long),
        batch=Bracket(**{k: s.batch for k, s in zip(SCENARIOS, results, strict=True)}),
        realtime=Bracket(**{k: s.realtime for k, s in zip(SCENARIOS, results, strict=True)}),
        unpriced=unpriced,
        assumptions=tuple(_assumptions(model, profile, cache_ttl, cache_used, minimum, bands)),
    )


class _Priced(BaseModel):
    realtime: float | None
    batch: float | None
    long: int
    unpriced: tuple[str, ...] = ()


def _scenario(
    kind: str,
    bands: tuple[Price, ...],
    rows: pl.Series,
    profile: TokenProfile,
    ttl: str,
    cached: bool,
    primed: bool,
    index: int,
) -> _Priced:
    """One scenario's cost: requests grouped by price band, each group priced at its band."""
    scale = {"low": 0, "expected": None, "high": 1}[kind]
    prefix = profile.prefix_tokens * (1.0 if scale is None else profile.prefix_range[scale])
    row_factor = 1.0 if scale is None else profile.row_range[scale]
    output = profile.output_tokens[index]
    scaled = rows * row_factor
    if not bands or rows.len() == 0:
        return _Priced(
            realtime=None if not bands else 0.0, batch=None if not bands else 0.0, long=0
        )
    groups = _band_groups(bands, scaled, prefix)
    first_band = band_for(bands, prefix + float(scaled[0]))
    realtime = batch = 0.0
    unpriced: list[str] = []
    for band, n, row_sum in groups:
        cost = _band_cost(kind, band, n, row_sum, prefix, output, ttl, cached, primed)
        if isinstance(cost, str):
            unpriced.append(cost)
            continue
        if kind == "expected" and cached and primed and band is first_band:
            cost += _prime_write_extra(band, prefix, ttl, unpriced)
        realtime += cost / 1e6
        batch += cost / 1e6 * band.batch_discount
    long = sum(n for band, n, _ in groups if band is not bands[0])
    if unpriced:
        return _Priced(realtime=None, batch=None, long=long, unpriced=tuple(unpriced))
    return _Priced(realtime=realtime, batch=batch, long=long)


def _band_groups(
    bands: tuple[Price, ...], rows: pl.Series, prefix: float
) -> list[tuple[Price, int, float]]:
    """(band, requests, row tokens) for every band that has requests."""
    prompt = rows + prefix
    band_index = sum(
        ((prompt > b.prompt_tokens_over).cast(pl.Int32) for b in bands[1:]), 0 * prompt
    )
    frame = pl.DataFrame({"band": band_index.cast(pl.Int32), "rows": rows})
    grouped = frame.group_by("band").agg(pl.len().alias("n"), pl.col("rows").sum()).sort("band")
    return [(bands[b], int(n), float(r)) for b, n, r in grouped.iter_rows()]


def _band_cost(
    kind: str,
    band: Price,
    n: int,
    row_sum: float,
    prefix: float,
    output: float,
    ttl: str,
    cached: bool,
    primed: bool,
) -> float | str:
    """USD x 1e6 at standard prices for `n` requests in one band, or why it cannot be priced."""
    if not cached or prefix == 0:
        prefix_price: float | None = band.input
        what = "input"
    elif kind == "low" or (kind == "expected" and primed):
        prefix_price, what = band.cache_read, "cache read"
    else:
        prefix_price, what = band.cache_write(ttl), f"{ttl} cache write"
    if prefix_price is None:
        return _missing(band, what)
    return row_sum * band.input + n * prefix * prefix_price + n * output * band.output


def _prime_write_extra(band: Price, prefix: float, ttl: str, unpriced: list[str]) -> float:
    """The priming request writes the prefix instead of reading it."""
    write, read = band.cache_write(ttl), band.cache_read
    if write is None or read is None:
        unpriced.append(_missing(band, f"{ttl} cache write"))
        return 0.0
    return prefix * (write - read)


def _missing(band: Price, what: str) -> str:
    return (
        f"{band.model} publishes no {what} price for prompts over "
        f"{band.prompt_tokens_over:,} tokens (halfrate/prices.csv, {band.effective_from})"
    )


def _assumptions(
    model: str,
    profile: TokenProfile,
    ttl: str,
    cache_used: bool,
    minimum: int,
    bands: tuple[Price, ...],
) -> list[str]:
    low, expected, high = profile.output_tokens
    lines = [
        *profile.notes,
        f"output per request: low {low:,.0f}, expected {expected:,.0f}, high {high:,.0f} "
        "(max_tokens) tokens",
    ]
    if ttl == "none":
        lines.append("prompt caching off: every request pays the prefix as input")
    elif not cache_used:
        lines.append(
            f"prefix below {model}'s minimum cacheable length ({minimum:,} tokens): not "
            "cached, every request pays it as input"
        )
    else:
        lines.append(
            f"cache ({ttl} TTL): low = every request reads the prefix (the cache may be warm "
            "from an earlier job); expected = one write by the priming request, then reads "
            "(every request writes without priming: a batch does not see its own writes); "
            "high = every request writes it"
        )
        if ttl == "5m":
            lines.append(
                "with a 5m TTL a main batch that ends more than 5 minutes after the priming "
                "batch writes the prefix again: up to the high figure"
            )
    for band in bands[1:]:
        lines.append(
            f"requests over {band.prompt_tokens_over:,} prompt tokens (input + cache reads + "
            f"writes) are billed at {model}'s long-context prices (input ${band.input:g}, "
            f"output ${band.output:g} per million tokens) for every token"
        )
    return lines
