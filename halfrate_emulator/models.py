"""The model ids the emulator knows, and each one's minimum cacheable prompt length.

The facts are data, shared with halfrate's core: `halfrate/models.csv` (one row per model:
`model,min_cacheable_tokens,source`). The emulator reads that file by path and never imports
halfrate code, so the two can never disagree about which prefix is long enough to cache.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from functools import cache
from pathlib import Path

_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")
MODELS_FILE = "models.csv"
DEFAULT_MIN_CACHEABLE = 1024  # unknown models are refused anyway; this only sizes the estimate


def models_csv() -> Path:
    """halfrate/models.csv, found without importing the halfrate package."""
    spec = importlib.util.find_spec("halfrate")  # a top-level spec: nothing is executed
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / MODELS_FILE
        if path.is_file():
            return path
    return Path(__file__).resolve().parents[1] / "halfrate" / MODELS_FILE


@cache
def min_cacheable_table() -> dict[str, int]:
    """Model id -> minimum cacheable prefix in tokens (reference section 7), from models.csv."""
    path = models_csv()
    with path.open(encoding="utf-8", newline="") as fh:
        table: dict[str, int] = {}
        for number, row in enumerate(csv.DictReader(fh), start=2):
            try:
                table[row["model"]] = int(row["min_cacheable_tokens"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"{path} line {number}: expected model,min_cacheable_tokens"
                ) from None
    return table


def base_model(model: str) -> str:
    """Strip a date suffix: `claude-haiku-4-5-20251001` -> `claude-haiku-4-5`."""
    match = _DATED.match(model)
    return match.group("base") if match else model


def is_known_model(model: str) -> bool:
    """True for the model ids anthropic 2.10.0 lists (with or without a date suffix)."""
    return base_model(model) in min_cacheable_table()


def min_cacheable_tokens(model: str) -> int:
    """The minimum prefix length (tokens) that the model caches."""
    return min_cacheable_table().get(base_model(model), DEFAULT_MIN_CACHEABLE)
