"""The arithmetic of a pilot's projection: fit what the pilot's requests used, price the rest.

Pure: it takes the pilot's requests (`Usage`, one per request, with its row's size), the rest
of the job's requests (their sizes, grouped: `x`, `n`) and the price bands, and returns the
full job's cost at batch prices, low / expected / high. Every figure is fitted on the pilot:

- uncached input tokens per request: a least-squares line over the row's size `x` (its
  characters, plus four per estimated document token), which carries the message overhead and
  any uncached prefix in its intercept;
- output tokens per request: a least-squares line over `x` too, clipped to [0, max_tokens]
  (longer inputs often get longer answers; where they do not, the slope is near zero). Without
  variation in `x` both lines are the pilot's means;
- the cached prefix: its mean tokens per request, and the shares of it read from the cache,
  written for 5 minutes and written for an hour (the measured cache behaviour);
- the share of requests billed (succeeded; errored and expired ones are free) and the share
  that needs another try (retriable or invalid output), which is asked again up to
  max_attempts: each remaining request costs (1 + q + ... + q^(max_attempts-1)) times once.

The interval is a bootstrap over the pilot's requests (`BOOTSTRAP_SAMPLES` resamples with a
fixed seed): its 5th and 95th percentiles. It says how well the pilot pins the averages down,
not how a model might change its answers between the pilot and the rest.
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import polars as pl

from halfrate.cost_model import _missing
from halfrate.pricing import Price, band_for

BOOTSTRAP_SAMPLES = 400
INTERVAL = (0.05, 0.95)


@dataclass(frozen=True)
class Usage:
    """One pilot request: its row's size and what its result used (zeros when not billed)."""

    x: float
    billed: bool
    retry: bool
    input_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    output_tokens: int = 0

    @property
    def prefix(self) -> int:
        return self.cache_write_5m + self.cache_write_1h + self.cache_read


class Fit(NamedTuple):
    """Per-request figures fitted on the pilot."""

    input_line: tuple[float, float]
    output_line: tuple[float, float]
    prefix: float
    prefix_shares: tuple[float, float, float]
    """Of the cached prefix: read, written for 5 minutes, written for an hour."""
    billed: float
    retry: float


class Priced(NamedTuple):
    realtime: float
    batch: float


def request_cost(bands: tuple[Price, ...], u: Usage) -> Priced | str:
    """What one billed request cost (USD), or why it cannot be priced."""
    band = band_for(bands, u.input_tokens + u.prefix)
    parts: list[tuple[int, float | None, str]] = [
        (u.input_tokens, band.input, "input"),
        (u.output_tokens, band.output, "output"),
        (u.cache_write_5m, band.cache_write_5m, "5m cache write"),
        (u.cache_write_1h, band.cache_write_1h, "1h cache write"),
        (u.cache_read, band.cache_read, "cache read"),
    ]
    total = 0.0
    for tokens, price, what in parts:
        if tokens and price is None:
            return _missing(band, what)
        total += tokens * (price or 0.0)
    return Priced(total / 1e6, total / 1e6 * band.batch_discount)


def fit(usages: Sequence[Usage]) -> Fit | None:
    """The pilot's figures, or None when none of its requests was billed."""
    billed = [u for u in usages if u.billed]
    if not billed:
        return None
    xs = [u.x for u in billed]
    prefix = [u.prefix for u in billed]
    total_prefix = sum(prefix)
    shares = (1.0, 0.0, 0.0)
    if total_prefix:
        shares = (
            sum(u.cache_read for u in billed) / total_prefix,
            sum(u.cache_write_5m for u in billed) / total_prefix,
            sum(u.cache_write_1h for u in billed) / total_prefix,
        )
    return Fit(
        input_line=_line(xs, [u.input_tokens for u in billed]),
        output_line=_line(xs, [u.output_tokens for u in billed]),
        prefix=total_prefix / len(billed),
        prefix_shares=shares,
        billed=len(billed) / len(usages),
        retry=sum(u.retry for u in usages) / len(usages),
    )


def _line(xs: list[float], ys: list[int]) -> tuple[float, float]:
    """Least squares y = a + b x (the mean when x does not vary)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if n < 3 or var <= 1e-9 * max(1.0, mean_x**2):
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    return mean_y - slope * mean_x, slope


def rest_cost(
    f: Fit, rest: pl.DataFrame, bands: tuple[Price, ...], max_tokens: int, realtime: bool = False
) -> float | str:
    """What the remaining requests (`rest`: x, n) cost once each, billed, at batch prices (or
    at real-time prices: `realtime`)."""
    if rest.height == 0:
        return 0.0
    (a_in, b_in), (a_out, b_out) = f.input_line, f.output_line
    inputs = (a_in + b_in * pl.col("x")).clip(lower_bound=0)
    band = pl.lit(0, pl.Int32)
    for b in bands[1:]:
        band = band + (inputs + f.prefix > b.prompt_tokens_over).cast(pl.Int32)
    frame = rest.select(
        "n",
        band.alias("band"),
        (inputs * pl.col("n")).alias("input"),
        ((a_out + b_out * pl.col("x")).clip(0, max_tokens) * pl.col("n")).alias("output"),
    )
    sums = frame.group_by("band").agg(pl.col("n", "input", "output").sum())
    total = 0.0
    for index, n, inputs_sum, outputs_sum in sums.iter_rows():
        price = bands[index]
        prefix_price = _prefix_price(price, f.prefix_shares) if f.prefix else 0.0
        if isinstance(prefix_price, str):
            return prefix_price
        micro = inputs_sum * price.input + n * f.prefix * prefix_price + outputs_sum * price.output
        total += micro / 1e6 * (1.0 if realtime else price.batch_discount)
    return total


def _prefix_price(band: Price, shares: tuple[float, float, float]) -> float | str:
    read, write_5m, write_1h = shares
    total = 0.0
    for share, price, what in (
        (read, band.cache_read, "cache read"),
        (write_5m, band.cache_write_5m, "5m cache write"),
        (write_1h, band.cache_write_1h, "1h cache write"),
    ):
        if share and price is None:
            return _missing(band, what)
        total += share * (price or 0.0)
    return total


def tries(retry: float, max_attempts: int) -> float:
    """Expected sends per request: 1 + q + q^2 + ... up to max_attempts."""
    return sum(retry**k for k in range(max_attempts))


@dataclass(frozen=True)
class Job:
    """What the projection needs besides the pilot: the rest of the job and its prices."""

    rest: pl.DataFrame
    bands: tuple[Price, ...]
    max_tokens: int
    max_attempts: int
    known_usd: float
    """What the prime and pilot batches cost (at batch prices)."""
    pilot_retried: int
    """Pilot requests that need another try: they are asked again with the rest."""
    pilot_billed_mean_usd: float
    """What one billed pilot request cost on average (its retries cost as much)."""
    realtime: bool = False
    """The rest is sent in real time (`mode: realtime`): full prices, no batch discount, and
    it reads the cache the pilot warmed (real time sends its first request alone to write it,
    so the pilot's one write is not the rest's share)."""


def total(job: Job, f: Fit) -> float | str:
    """The full job at batch prices: what was paid, the rest and every retry expected."""
    if job.realtime and f.prefix_shares[0]:
        f = f._replace(prefix_shares=(1.0, 0.0, 0.0))
    once = rest_cost(f, job.rest, job.bands, job.max_tokens, job.realtime)
    if isinstance(once, str):
        return once
    rest = once * f.billed * tries(f.retry, job.max_attempts)
    sends = tries(f.retry, job.max_attempts - 1)
    again = job.pilot_retried * job.pilot_billed_mean_usd * f.billed * sends
    return job.known_usd + rest + again


def project(
    usages: Sequence[Usage], job: Job, seed: str
) -> tuple[float, float, float] | str | None:
    """Low, expected and high cost of the whole job (a bootstrap interval around the point
    estimate); a string when it cannot be priced, None when the pilot has no billed request."""
    point_fit = fit(usages)
    if point_fit is None:
        return None
    point = total(job, point_fit)
    if isinstance(point, str):
        return point
    rng = random.Random(seed)
    samples: list[float] = []
    for _ in range(BOOTSTRAP_SAMPLES):
        drawn = [usages[rng.randrange(len(usages))] for _ in usages]
        f = fit(drawn)
        value = total(job, f) if f is not None else None
        if isinstance(value, float):
            samples.append(value)
    if not samples:
        return point, point, point
    samples.sort()
    low, high = (_percentile(samples, q) for q in INTERVAL)
    return min(low, point), point, max(high, point)


def cold_cache(usages: Sequence[Usage], job: Job, ttl: str) -> float | str | None:
    """The expected cost if the rest writes the cached prefix again instead of reading it (it
    is sent after the cache's `ttl` ran out since the pilot); None when the pilot read none,
    or in real time (its first request alone writes the cache for the others again)."""
    f = fit(usages)
    if job.realtime or f is None or not f.prefix or not f.prefix_shares[0]:
        return None
    writes = (0.0, 1.0, 0.0) if ttl == "5m" else (0.0, 0.0, 1.0)
    return total(job, f._replace(prefix_shares=writes))


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks."""
    position = q * (len(ordered) - 1)
    below, above = math.floor(position), math.ceil(position)
    weight = position - below
    return ordered[below] * (1 - weight) + ordered[above] * weight
