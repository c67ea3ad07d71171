"""Schema-valid JSON from a JSON Schema, with enum values chosen by word overlap with the prompt.

This is how the emulator answers structured-output and forced-tool requests offline: the output
always validates against the schema, and labels are plausible (the enum value whose words best
overlap the request text wins; ties go to a stable hash) without any model behind them.
"""

from __future__ import annotations

import re
from typing import Any

from halfrate_emulator.ids import stable_hash

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SUFFIXES = ("ing", "ed", "es", "ly", "s")
_MAX_DEPTH = 12
_HINTS = re.compile(r"\{([^{}]*)\}\s*$")
_LIMITS = ("minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
           "exclusiveMaximum", "minItems", "maxItems")  # fmt: skip
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
}


def stem(word: str) -> str:
    """Very light stemming so `refunds`, `refunded` and `refund` meet."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> set[str]:
    """Lowercase stemmed words of `text`; labels split on `_`, `-`, spaces and camelCase."""
    spaced = _CAMEL.sub(" ", text).lower()
    return {stem(w) for w in _WORD.findall(spaced)}


def choose(options: list[Any], text: str) -> Any:
    """The option whose words overlap `text` most; ties broken by a stable hash."""
    vocabulary = words(text)

    def rank(option: Any) -> tuple[int, int]:
        overlap = len(words(str(option)) & vocabulary)
        return (-overlap, stable_hash(text, str(option)))

    return min(options, key=rank)


class InstanceBuilder:
    """Builds one instance of a schema; `text` steers enum choices and string contents."""

    def __init__(self, root: dict[str, Any], text: str) -> None:
        self.root = root
        self.text = text

    def build(self, schema: Any, name: str = "value", depth: int = 0) -> Any:
        """An instance of `schema` (a property `name` helps pick string contents)."""
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None if depth > _MAX_DEPTH else self._string({}, name)
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return choose(schema["enum"], self.text)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.build(_first_non_null(schema[key]), name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            return self.build(_merge(schema["allOf"], self._resolve), name, depth + 1)
        return self._typed(schema, _pick_type(schema), name, depth)

    def _typed(self, schema: dict[str, Any], kind: str, name: str, depth: int) -> Any:
        schema = described_limits(schema) | schema
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return _number(schema, kind)
        if kind == "boolean":
            return stable_hash(self.text, name) % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, name)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        result = {key: self.build(sub, key, depth + 1) for key, sub in props.items()}
        for key in schema.get("required") or []:
            if key not in result:
                result[key] = self._string({}, key)
        return result

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        size = max(low, 1) if high is None else min(max(low, 1), int(high))
        raw_items = schema.get("items")
        items: dict[str, Any] = raw_items if isinstance(raw_items, dict) else {}
        built = [self.build(items, name, depth + 1) for _ in range(size)]
        if schema.get("uniqueItems") and items.get("enum"):
            built = list(dict.fromkeys(built))
            built += [v for v in items["enum"] if v not in built][: max(0, low - len(built))]
        return built

    def _string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        sample = " ".join(self.text.split()[:12]) or "emulated"
        value = f"{name}: {sample}" if name != "value" else sample
        low, high = int(schema.get("minLength") or 0), schema.get("maxLength")
        if high is not None:
            value = value[: int(high)]
        return value.ljust(low, "x")

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}


def described_limits(schema: dict[str, Any]) -> dict[str, float]:
    """Limits the API moved into the description (`... {maxLength: 200}`), which a model
    reads and mostly follows: the emulator follows them too."""
    found = _HINTS.search(str(schema.get("description") or ""))
    limits: dict[str, float] = {}
    for part in found.group(1).split(", ") if found else []:
        key, _, value = part.partition(": ")
        try:
            number = float(value)
        except ValueError:
            continue
        if key in _LIMITS:
            limits[key] = int(number) if number.is_integer() else number
    return limits


def _pick_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = kinds[0]
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _first_non_null(options: list[Any]) -> Any:
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0]


def _merge(parts: list[Any], resolve: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        part = resolve(part) if isinstance(part, dict) else {}
        merged["properties"].update(part.get("properties") or {})
        merged["required"] += part.get("required") or []
        for key, value in part.items():
            if key not in ("properties", "required"):
                merged.setdefault(key, value)
    return merged


def _number(schema: dict[str, Any], kind: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    elif high is not None:
        value = min(0, high - (1 if "exclusiveMaximum" in schema else 0))
    else:
        value = 0
    if high is not None and value > high:
        value = high
    return int(value) if kind == "integer" else float(value)


def build_instance(schema: dict[str, Any], text: str) -> Any:
    """A deterministic instance of `schema` steered by `text` (the last user message)."""
    return InstanceBuilder(schema, text).build(schema)
