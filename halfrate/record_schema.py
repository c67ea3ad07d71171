"""A job's record schema: from the job file or a pydantic model, checked before anything is sent.

`schema:` is an inline JSON Schema for one record; `schema_model: "package.module:Model"` names a
pydantic model whose `model_json_schema()` is used. Either is checked when the job is read:
a valid JSON Schema (the 2020-12 meta-schema), an object with properties at the top (structured
outputs are objects; its properties become the typed table's columns), a type for every value
(the API needs one), local `$ref`s that resolve, and names that can be columns.

What is sent as `output_config.format` is the schema as anthropic's `transform_schema` makes it
(keywords the API does not take move into descriptions); the outputs are validated against the
user's full schema (halfrate/output_checks.py, halfrate/full_checks.py).
"""

import importlib
import os
import sys
from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel

from halfrate.errors import ActionableError
from halfrate.full_checks import FullSchemaError, validator_for
from halfrate.output_checks import MAX_DEPTH, SchemaCheckError, compile_checks, resolve
from halfrate.typed_table import TypedTableError, structure

LITERAL_KEYS = ("type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref")
"""A value's schema needs one of these (anthropic's transform_schema refuses it otherwise)."""


class RecordSchemaError(ValueError, ActionableError):
    """A schema or schema_model that cannot describe a record; the message says what to fix."""


def check_schema(schema: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """`schema` if it can describe one record; else a RecordSchemaError naming the problem
    (after `where`, if given)."""
    where = f"{where}: " if where else ""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.path)
        raise RecordSchemaError(
            f"{where}not a valid JSON Schema: {exc.message}" + (f" (at {at})" if at else "")
        ) from None
    try:
        untyped = _untyped(schema, schema, "the record", 0)
        if untyped is not None:
            raise RecordSchemaError(
                f"{where}{untyped} has no type; give it a `type` (or anyOf, enum or const): "
                "structured outputs need one for every value"
            )
        structure(schema)
        checks = compile_checks(schema)
        if checks.full_schema is not None:
            validator_for(checks.full_schema)
    except (TypedTableError, SchemaCheckError, FullSchemaError) as exc:
        raise RecordSchemaError(f"{where}{exc}") from None
    return schema


def _untyped(node: Any, root: dict[str, Any], name: str, depth: int) -> str | None:
    """The first value (by name) whose schema says nothing of its type."""
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    if not any(key in node for key in LITERAL_KEYS):
        return name
    node = resolve(node, root)
    children = [(f"{key}", sub) for key, sub in (node.get("properties") or {}).items()]
    if isinstance(node.get("items"), dict):
        children.append(("items", node["items"]))
    for key in ("anyOf", "oneOf", "allOf"):
        children += [(key, sub) for sub in node.get(key) or [] if isinstance(sub, dict)]
    for key, sub in children:
        child = key if name == "the record" else f"{name}.{key}"
        found = _untyped(sub, root, child, depth + 1)
        if found is not None:
            return found
    return None


def model_schema(spec: str) -> dict[str, Any]:
    """The JSON Schema of the pydantic model `package.module:Model` (checked)."""
    return orjson.loads(_model_schema_json(spec))  # type: ignore[no-any-return]


@cache
def _model_schema_json(spec: str) -> bytes:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise RecordSchemaError(
            f"{spec!r}: write it as 'package.module:Model' (the module to import, "
            "a colon, the model's name in it)"
        )
    module = _import(spec, module_name)
    model = module
    for part in attribute.split("."):
        model = getattr(model, part, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise RecordSchemaError(
            f"{spec!r}: {attribute} in {module_name} is not a pydantic model (a "
            f"BaseModel subclass), it is {type(model).__name__ if model is not None else 'missing'}"
        )
    schema = check_schema(model.model_json_schema(), f"{spec!r}: its JSON Schema")
    return orjson.dumps(schema)


def _import(spec: str, module_name: str) -> Any:
    """Import the module, from the current directory too (where a user runs halfrate)."""
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.append(here)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # an import runs the user's code: anything can go wrong
        raise RecordSchemaError(
            f"{spec!r}: cannot import {module_name!r} ({type(exc).__name__}: "
            f"{exc}); it must be importable where halfrate runs (the current directory or "
            "PYTHONPATH)"
        ) from None
    finally:
        if added:
            sys.path.remove(here)


def api_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as sent in `output_config.format`: what the API accepts of it."""
    return orjson.loads(_api_schema_json(orjson.dumps(schema)))  # type: ignore[no-any-return]


@cache
def _api_schema_json(schema_json: bytes) -> bytes:
    from anthropic import transform_schema  # importing anthropic costs seconds: only when built

    return orjson.dumps(transform_schema(_type_lists_as_any_of(orjson.loads(schema_json))))


def _type_lists_as_any_of(node: Any) -> Any:
    """`{"type": ["integer", "null"]}` as `anyOf` branches (transform_schema takes one type)."""
    if isinstance(node, list):
        return [_type_lists_as_any_of(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _type_lists_as_any_of(value) for key, value in node.items()}
    types = node.get("type")
    if not isinstance(types, list):
        return node
    if len(types) == 1:
        return node | {"type": types[0]}
    shared = {k: node.pop(k) for k in ("description", "title", "default") if k in node}
    node.pop("type")
    branches = [{"type": "null"} if t == "null" else node | {"type": t} for t in types]
    return shared | {"anyOf": branches}
