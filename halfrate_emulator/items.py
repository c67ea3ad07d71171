"""Synchronous checks of each create item (`custom_id`, `params`) and where valid items go."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from halfrate_emulator.errors import ApiError, invalid

CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class ParsedBody:
    """What the create endpoint needs after parsing: the count and the spooled item files."""

    count: int
    requests_path: Path
    custom_ids_path: Path


def check_item(index: int, item: Any, seen: dict[str, int]) -> str:
    """Validate one `requests[index]` the way the API does synchronously; return its custom_id."""
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    for key in item:
        if key not in ("custom_id", "params"):
            raise invalid(f"{where}.{key}: Extra inputs are not permitted")
    custom_id = _check_custom_id(where, item)
    if "params" not in item:
        raise invalid(f"{where}.params: Field required")
    if not isinstance(item["params"], dict):
        raise invalid(f"{where}.params: Input should be a valid dictionary")
    if custom_id in seen:
        raise invalid(
            f"{where}.custom_id: Duplicate custom_id '{custom_id}' "
            f"(already used by requests.{seen[custom_id]}); custom_id must be unique"
        )
    seen[custom_id] = index
    return custom_id


def _check_custom_id(where: str, item: dict[str, Any]) -> str:
    if "custom_id" not in item:
        raise invalid(f"{where}.custom_id: Field required")
    value = item["custom_id"]
    if not isinstance(value, str):
        raise invalid(f"{where}.custom_id: Input should be a valid string")
    if not value:
        raise invalid(f"{where}.custom_id: String should have at least 1 character")
    if len(value) > 64:
        raise invalid(f"{where}.custom_id: String should have at most 64 characters")
    if not CUSTOM_ID_RE.match(value):
        raise invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    return value


def dump_item(item: Any) -> bytes:
    """One compact JSON line (no newline) for an item."""
    try:
        return orjson.dumps(item)
    except TypeError:  # integers beyond 64 bits: orjson refuses, stdlib copes
        return json.dumps(item, separators=(",", ":")).encode()


class ItemSink:
    """Checks items in order and writes the valid ones to `requests.jsonl`.

    The first problem is remembered rather than raised, so that the caller can keep parsing:
    a JSON syntax error later in the body must win, as it does with the API's pydantic.
    """

    def __init__(self, out: IO[bytes], max_requests: int) -> None:
        self.out = out
        self.max_requests = max_requests
        self.custom_ids: list[str] = []
        self.seen: dict[str, int] = {}
        self.problem: ApiError | None = None
        self.count = 0

    def add(self, item: Any, raw: bytes | None = None) -> None:
        """Take the next item; `raw` is its compact JSON text if the caller already has it."""
        index = self.count
        self.count += 1
        if index >= self.max_requests or self.problem is not None:
            return
        try:
            self.custom_ids.append(check_item(index, item, self.seen))
        except ApiError as err:
            self.problem = err
            return
        line = raw if raw is not None and b"\n" not in raw and b"\r" not in raw else dump_item(item)
        self.out.write(line + b"\n")

    def note(self, problem: ApiError) -> None:
        """Remember a problem found outside the items (the first one wins)."""
        self.problem = self.problem or problem

    def finish(self) -> None:
        """Raise the first problem, including the array length limits."""
        if self.count == 0:
            self.note(invalid("requests: List should have at least 1 item after validation, not 0"))
        if self.count > self.max_requests:
            self.problem = invalid(
                f"requests: List should have at most {self.max_requests} items after "
                f"validation, not {self.count}"
            )
        if self.problem is not None:
            raise self.problem
