"""Validate outputs against the whole output schema, for what the SQL checks do not enforce.

The parse SQL checks types, enums, ranges, required and extra keys vectorised
(halfrate/output_checks.py). A schema that says more (a `pattern`, a `format`, `maxLength`,
`minItems`, objects inside arrays, `oneOf`...) is validated here too: only the outputs the SQL
found valid, with a compiled validator (fastjsonschema: a few microseconds per output), and
those that fail become `invalid_output` with the validator's reason, to be asked again.

The API enforces none of these keywords (anthropic's `transform_schema` moves them into the
descriptions it sends), so this is where they are enforced.
"""

from collections.abc import Callable
from functools import cache
from typing import Any

import duckdb
import fastjsonschema
import orjson
import pyarrow as pa

from halfrate.errors import ActionableError
from halfrate.sql import load_sql

READ_ROWS = 8192  # outputs validated per Arrow batch (bounded memory)


class FullSchemaError(ValueError, ActionableError):
    """A schema the validator cannot be compiled from; the message says which part."""


def validator_for(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """The compiled validator of `schema` (compiled once per process per schema)."""
    return _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


@cache
def _compiled(schema_json: bytes) -> Callable[[Any], Any]:
    schema = orjson.loads(schema_json)
    schema.pop("$schema", None)  # fastjsonschema reads draft 7; the keywords we use agree
    try:
        return fastjsonschema.compile(schema, use_default=False)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise FullSchemaError(f"the schema cannot be compiled for validation: {exc}") from None


def reason(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """The validator's message with our naming: `data.a.b must be ...` -> `a.b must be ...`."""
    message = str(exc.message)
    if message.startswith("data."):
        return message.removeprefix("data.")
    return "the output" + message.removeprefix("data") if message.startswith("data ") else message


def failures(texts: pa.RecordBatch, validate: Callable[[Any], Any]) -> tuple[list[str], list[str]]:
    """The custom_ids of a batch of (custom_id, text) whose text fails, and why."""
    ids: list[str] = []
    reasons: list[str] = []
    for custom_id, text in zip(
        texts.column(0).to_pylist(), texts.column(1).to_pylist(), strict=True
    ):
        try:
            validate(orjson.loads(text))
        except fastjsonschema.JsonSchemaValueException as exc:
            ids.append(custom_id)
            reasons.append(reason(exc))
        except orjson.JSONDecodeError:  # the SQL accepted it as JSON: should not happen
            ids.append(custom_id)
            reasons.append("not JSON")
    return ids, reasons


def apply_full_checks(con: duckdb.DuckDBPyConnection, schema: dict[str, Any]) -> int:
    """Re-check the valid outputs in `parsed_results`, marking the failures; their number."""
    validate = validator_for(schema)
    reader: pa.RecordBatchReader = con.sql(load_sql("parse/valid_outputs")).to_arrow_reader(
        READ_ROWS
    )
    ids: list[str] = []
    reasons: list[str] = []
    for batch in reader:
        more_ids, more_reasons = failures(batch, validate)
        ids += more_ids
        reasons += more_reasons
    if not ids:
        return 0
    con.register("full_check_failures", pa.table({"custom_id": ids, "reason": reasons}))
    try:
        con.execute(load_sql("parse/mark_full_check_failures"))
    finally:
        con.unregister("full_check_failures")
    return len(ids)
