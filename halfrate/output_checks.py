"""An output JSON Schema, flattened into checks the parse step applies to every output in DuckDB.

The parse SQL (sql/parse/parse_results.sql) extracts every checked path of every output with one
`json_extract` call and tests it against these checks, vectorised; the first failure becomes the
row's `invalid_reason`. What is checked, per object property (nested objects included):
presence (`required`), JSON type (`type`, a list of types, `anyOf`/`oneOf` of typed branches,
`nullable`), `enum`/`const`, `minimum`/`maximum` (and their exclusive forms), no keys beyond
`properties` when `additionalProperties` is false, and the type of an array's items when
`items` has one. Local `$ref`s (`#/$defs/...`) are followed. Anything else (patterns, formats,
lengths, the properties of objects inside arrays or `anyOf` branches) is not checked here: a
schema that uses such a keyword also carries `full_schema`, and the parse step validates the
outputs that pass these checks against it in Python (halfrate/full_checks.py).
"""

from dataclasses import dataclass, field
from typing import Any

import orjson

from halfrate.errors import ActionableError

JSON_TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "string": (("VARCHAR",), "a string"),
    "integer": (("BIGINT", "UBIGINT"), "an integer"),
    "number": (("BIGINT", "UBIGINT", "DOUBLE"), "a number"),
    "boolean": (("BOOLEAN",), "a boolean"),
    "null": (("NULL",), "null"),
    "array": (("ARRAY",), "an array"),
    "object": (("OBJECT",), "an object"),
}
"""JSON Schema type -> the DuckDB json_type() names that satisfy it, and how to say it."""
MAX_DEPTH = 16
ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "$schema", "$id", "$defs",
     "definitions", "readOnly", "writeOnly", "deprecated"}
)  # fmt: skip
"""Keywords that never constrain a value."""
CHECKED = ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "enum", "const", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "items", "anyOf", "nullable", "$ref",
}  # fmt: skip
"""Keywords the SQL checks enforce in full (with the limits `uncovered` applies)."""


class SchemaCheckError(ValueError, ActionableError):
    """An output schema the checks cannot be compiled from (e.g. an unresolvable $ref)."""


@dataclass(frozen=True)
class OutputChecks:
    """The checks of one output schema, as the parse SQL's parameters.

    The output itself must be a JSON object (structured outputs always are); `root_keys` are
    the keys it may have (None: any), `checks` what its properties must satisfy, in order.
    """

    checks: list[dict[str, Any]] = field(default_factory=list)
    root_keys: list[str] | None = None
    full_schema: dict[str, Any] | None = None
    """The whole schema, when it says more than the checks enforce (validated in Python)."""

    def params(self) -> dict[str, Any]:
        """$checks, $paths (one JSON Pointer per check) and $root_keys."""
        paths = [c["path"] for c in self.checks]
        return {"checks": self.checks, "paths": paths, "root_keys": self.root_keys}


def compile_checks(schema: dict[str, Any]) -> OutputChecks:
    """Flatten `schema` (an object schema, as structured outputs require) into checks."""
    checks: list[dict[str, Any]] = []
    _walk(schema, schema, "the output", "$", 0, True, checks, 0)
    nested_checks = checks[1:]
    for check in nested_checks:  # indexes shift by one without the root
        check["parent"] = max(check["parent"] - 1, 0)
    if nested_checks and nested_checks[-1]["path"] == "$":  # the root's trailing keys check
        nested_checks.pop()
    full = schema if uncovered(schema) is not None else None
    return OutputChecks(nested_checks, _root_keys(schema), full)


def uncovered(schema: dict[str, Any]) -> str | None:
    """The first keyword of `schema` the SQL checks do not enforce (None: they cover it all)."""
    return _uncovered(schema, schema, 0)


def _uncovered(schema: Any, root: dict[str, Any], depth: int) -> str | None:
    node = _resolve(schema, root)
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH}"
    extra: str | None = next((key for key in node if key not in CHECKED), None)
    if extra is not None:
        return extra
    properties = node.get("properties") or {}
    if node.get("additionalProperties") not in (None, True, False):
        return "additionalProperties"
    if set(node.get("required") or []) - set(properties):
        return "required"  # a required key without a property is not checked
    for sub in properties.values():
        found = _uncovered(sub, root, depth + 1)
        if found is not None:
            return found
    if "items" in node and not _bare(node["items"], root):
        return "items"  # only the items' type is checked
    if any(not _bare(branch, root) for branch in node.get("anyOf") or []):
        return "anyOf"  # only the branches' types are checked
    return None


def _bare(node: Any, root: dict[str, Any]) -> bool:
    """A schema that says no more than a type (what an anyOf branch or items check)."""
    return isinstance(node, dict) and set(_resolve(node, root)) <= ANNOTATIONS | {
        "type",
        "nullable",
    }


def _walk(
    node: dict[str, Any],
    root: dict[str, Any],
    name: str,
    path: str,
    parent: int,
    required: bool,
    checks: list[dict[str, Any]],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        return  # a recursive schema: deeper levels are not checked
    node = _resolve(node, root)
    properties: dict[str, Any] = node.get("properties") or {}
    check = _check(node, root, name, path, parent, required)
    checks.append(check | {"keys": None})
    index = len(checks)  # 1-based, as DuckDB lists are
    for key, sub in properties.items():
        child_path = ("" if path == "$" else path) + "/" + _pointer(key)
        child_name = key if path == "$" else f"{name}.{key}"
        child_parent = 0 if path == "$" else index
        is_required = key in (node.get("required") or [])
        _walk(sub, root, child_name, child_path, child_parent, is_required, checks, depth + 1)
    if check["keys"] is not None:  # after the properties: a missing field is the better reason
        checks.append(_check({}, root, name, path, parent, False) | {"keys": check["keys"]})


def _root_keys(schema: dict[str, Any]) -> list[str] | None:
    resolved = _resolve(schema, schema)
    if resolved.get("additionalProperties") is False and "patternProperties" not in resolved:
        return list(resolved.get("properties") or {})
    return None


def _check(
    node: dict[str, Any], root: dict[str, Any], name: str, path: str, parent: int, required: bool
) -> dict[str, Any]:
    types, expected = _types(node, root)
    enum = node.get("enum") if "enum" in node else ([node["const"]] if "const" in node else None)
    items = _resolve(node["items"], root) if isinstance(node.get("items"), dict) else {}
    item_types, item_expected = _types(items, root) if items else (None, None)
    keys = None
    if node.get("additionalProperties") is False and "patternProperties" not in node:
        keys = list(node.get("properties") or {})
    low, low_exclusive = _bound(node, "minimum", "exclusiveMinimum")
    high, high_exclusive = _bound(node, "maximum", "exclusiveMaximum")
    return {
        "name": name,
        "path": path,
        "parent": parent,
        "required": required,
        "types": types,
        "expected": expected,
        "enum": None if enum is None else [orjson.dumps(v).decode() for v in enum],
        "enum_display": None if enum is None else _display(enum),
        "range_display": _range(low, low_exclusive, high, high_exclusive),
        "min_value": low,
        "min_exclusive": low_exclusive,
        "max_value": high,
        "max_exclusive": high_exclusive,
        "keys": keys,
        "item_types": item_types,
        "item_expected": item_expected,
    }


def _types(node: dict[str, Any], root: dict[str, Any]) -> tuple[list[str] | None, str | None]:
    """The json_type names a node allows and how to say them (None, None: any type)."""
    names: list[str] = []
    declared = node.get("type")
    if isinstance(declared, str):
        names = [declared]
    elif isinstance(declared, list):
        names = [t for t in declared if isinstance(t, str)]
    else:
        branches = node.get("anyOf") or node.get("oneOf")
        if not isinstance(branches, list):
            return None, None
        for branch in branches:
            branch_types, _ = _types(_resolve(branch, root), root)
            if branch_types is None:
                return None, None  # an untyped branch allows anything
            names += [n for n, (db, _) in JSON_TYPES.items() if set(db) <= set(branch_types)]
    if node.get("nullable") is True:
        names.append("null")
    names = [n for n in dict.fromkeys(names) if n in JSON_TYPES]
    if not names:
        return None, None
    db_types = list(dict.fromkeys(t for n in names for t in JSON_TYPES[n][0]))
    return db_types, " or ".join(JSON_TYPES[n][1] for n in names)


def _bound(node: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    value = node.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), True
    value = node.get(inclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), False
    return None, False


def _range(low: float | None, low_x: bool, high: float | None, high_x: bool) -> str | None:
    """The allowed range as people read it: ">= 1 and <= 5"."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_x else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_x else '<='} {high:g}")
    return " and ".join(parts) or None


def resolve(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """The schema `node` stands for, following local `$ref`s (`{}` if it is not a schema)."""
    return _resolve(node, root)


def _resolve(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref: str = node["$ref"]
        if not ref.startswith("#/") or seen > MAX_DEPTH:
            raise SchemaCheckError(f"$ref {ref!r}: only local references (#/$defs/...) are used")
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise SchemaCheckError(f"$ref {ref!r} does not resolve within the schema")
            target = target[part]
        node, seen = target, seen + 1
    return node if isinstance(node, dict) else {}


def _pointer(key: str) -> str:
    """A property name as a JSON Pointer token (DuckDB's json_extract reads /a/b paths)."""
    return key.replace("~", "~0").replace("/", "~1")


def _display(values: list[Any]) -> str:
    """An enum as people read it: ['billing', 'card', 3]."""
    shown = [f"'{v}'" if isinstance(v, str) else orjson.dumps(v).decode() for v in values]
    return "[" + ", ".join(shown) + "]"
