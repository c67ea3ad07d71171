"""Prices and model facts, kept as data: halfrate/prices.csv and halfrate/models.csv.

prices.csv has one row per model, date and price band. Prices are standard USD per million
tokens; batch prices are the same times `batch_discount` (0.5). A model's price list on a day
is every band of its latest `effective_from` on or before that day; a request is priced at the
band with the largest `prompt_tokens_over` below its prompt (input + cache reads + cache
writes), and every token of it (output included) is billed at that band. An empty price means
"not published": whatever needs it is unpriced (null), never guessed. The warehouse's
batch_costs view reads the same file.

models.csv has one row per model: its minimum cacheable prefix. The emulator reads the same
file, so halfrate and the emulator cannot disagree about it.
"""

import csv
import re
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MIN_CACHEABLE_TOKENS = 4096
"""For a model missing from models.csv: the strictest known minimum."""
MAX_PRICE_DECIMALS = 4
MAX_DISCOUNT_DECIMALS = 2
"""The warehouse keeps money as DECIMAL(24,12): exact while prices have at most 4 decimals
and the discount at most 2 (tokens x price x discount / 1e6 then needs at most 12)."""
_PRICE_COLUMNS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")


class Price(BaseModel):
    """One band of one model's prices (a row of prices.csv), USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    effective_from: date
    prompt_tokens_over: int = Field(ge=0)
    input: float = Field(gt=0)
    output: float = Field(gt=0)
    cache_write_5m: float | None = Field(gt=0)
    cache_write_1h: float | None = Field(gt=0)
    cache_read: float | None = Field(gt=0)
    batch_discount: float = Field(gt=0, le=1)
    source: str

    def cache_write(self, ttl: str) -> float | None:
        """The cache-write price for a TTL ("5m" or "1h"); None when not published."""
        return self.cache_write_1h if ttl == "1h" else self.cache_write_5m


class ModelFacts(BaseModel):
    """One row of models.csv."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    min_cacheable_tokens: int = Field(gt=0)
    source: str


def _read_csv(name: str) -> list[tuple[int, dict[str, str | None]]]:
    text = (resources.files("halfrate") / name).read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return [
        (number, {k: (v if v != "" else None) for k, v in row.items()})
        for number, row in enumerate(rows, start=2)
    ]


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _decimals(value: str | None) -> int:
    return len(value.partition(".")[2]) if value else 0


@cache
def price_table() -> tuple[Price, ...]:
    """Every row of halfrate/prices.csv, checked (a bad row names its line and what to fix)."""
    prices: list[Price] = []
    for number, row in _read_csv("prices.csv"):
        where = f"halfrate/prices.csv line {number}"
        too_precise = [c for c in _PRICE_COLUMNS if _decimals(row.get(c)) > MAX_PRICE_DECIMALS]
        if too_precise or _decimals(row.get("batch_discount")) > MAX_DISCOUNT_DECIMALS:
            raise ValueError(
                f"{where}: at most {MAX_PRICE_DECIMALS} decimals per price and "
                f"{MAX_DISCOUNT_DECIMALS} for batch_discount (the warehouse stores exact money)"
            )
        try:
            prices.append(Price.model_validate(row))
        except ValidationError as exc:
            raise ValueError(f"{where}: {_describe(exc)}") from None
    _check_bands(prices)
    return tuple(prices)


def _check_bands(prices: list[Price]) -> None:
    keys = [(p.model, p.effective_from, p.prompt_tokens_over) for p in prices]
    duplicated = {k for k in keys if keys.count(k) > 1}
    if duplicated:
        raise ValueError(
            f"halfrate/prices.csv: duplicate model/date/band rows {sorted(duplicated)}"
        )
    lists = {(p.model, p.effective_from) for p in prices}
    missing = sorted(k for k in lists if (*k, 0) not in keys)
    if missing:
        raise ValueError(
            f"halfrate/prices.csv: price lists without a prompt_tokens_over=0 band: {missing}"
        )


def price_list(model: str, on: date | None = None) -> tuple[Price, ...]:
    """Every band of `model`'s prices in effect on `on` (today, UTC), lowest band first."""
    day = on or datetime.now(UTC).date()
    rows = [p for p in price_table() if p.model == model and p.effective_from <= day]
    if not rows:
        return ()
    latest = max(p.effective_from for p in rows)
    return tuple(
        sorted((p for p in rows if p.effective_from == latest), key=lambda p: p.prompt_tokens_over)
    )


def band_for(bands: tuple[Price, ...], prompt_tokens: float) -> Price:
    """The band a request with this many prompt tokens is billed at (bands lowest first)."""
    return [b for b in bands if b.prompt_tokens_over < prompt_tokens or b is bands[0]][-1]


def price_for(model: str, on: date | None = None, prompt_tokens: float = 0) -> Price | None:
    """The price band for `model` on `on` for a prompt this long; None if the model is unknown."""
    bands = price_list(model, on)
    return band_for(bands, prompt_tokens) if bands else None


@cache
def model_facts() -> dict[str, ModelFacts]:
    """Every row of halfrate/models.csv, by model id."""
    facts: dict[str, ModelFacts] = {}
    for number, row in _read_csv("models.csv"):
        try:
            fact = ModelFacts.model_validate(row)
        except ValidationError as exc:
            raise ValueError(f"halfrate/models.csv line {number}: {_describe(exc)}") from None
        facts[fact.model] = fact
    return facts


def base_model(model: str) -> str:
    """A model id without its date suffix: `claude-haiku-4-5-20251001` -> `claude-haiku-4-5`."""
    match = _DATED.match(model)
    return match.group("base") if match else model


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix `model` caches (a shorter one is silently not cached)."""
    fact = model_facts().get(model) or model_facts().get(base_model(model))
    return fact.min_cacheable_tokens if fact else DEFAULT_MIN_CACHEABLE_TOKENS
