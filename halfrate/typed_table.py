"""A typed DuckDB table from an output JSON Schema: one column per top-level property.

Types follow the schema: string -> VARCHAR, integer -> BIGINT, number -> DOUBLE, boolean ->
BOOLEAN, an array of scalars -> a LIST of their type, an object with properties -> a STRUCT
of its properties (mapped the same way), a nullable type (`["integer", "null"]`, an `anyOf`
with a null branch, `nullable`) -> its non-null type, an `enum`/`const` -> the type of its
values, anything else -> JSON. Every table also has `job_name`, `row_id` and `attempt` (the
grain: one row per source row of a job with a valid output, key job_name + row_id).

The mapping is one `json_transform` structure: DuckDB derives the column types from it when it
creates the table, and fills the columns from each valid output with it when it loads a batch
(vectorised, no Python per row). Identifiers come from the schema, so they are checked against
a safe pattern before any SQL is made, then quoted; values are always parameters.
"""

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from halfrate.errors import ActionableError
from halfrate.output_checks import SchemaCheckError, resolve
from halfrate.sql import load_sql

if TYPE_CHECKING:
    import duckdb

TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
KEY_COLUMNS = ("job_name", "row_id", "attempt")
RESERVED = frozenset(
    {"jobs", "batches", "requests", "results", "outcomes", "job_rows", "quarantine", "prices",
     "user_cancels", "unsent_requests", "row_outcomes", "batch_costs", "job_costs", "labels",
     "generations", "extract_accuracy", "judgments"}
)  # fmt: skip
"""The warehouse's own tables and views: no output table may take their names."""
SCALARS = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
MAX_DEPTH = 8
_STRUCTURE_CHARS = re.compile(r'[A-Za-z0-9_\-\[\]{}":,]*')
_TABLE_SLOT, _STRUCTURE_SLOT = "typed_table", "'typed_structure'"


class TypedTableError(ValueError, ActionableError):
    """A schema or table name that cannot make a typed table; the message says what to change."""


def check_table_name(name: str) -> str:
    """`name` if it can be an output table, else a TypedTableError that says why."""
    if not TABLE_NAME.fullmatch(name):
        raise TypedTableError(
            f"output_table {name!r}: use lowercase letters, digits and _ (starting with a "
            "letter or _, at most 63 characters)"
        )
    if name in RESERVED:
        raise TypedTableError(
            f"output_table {name!r} is one of the warehouse's own tables or views; pick another"
        )
    return name


def structure(schema: dict[str, Any]) -> dict[str, Any]:
    """The json_transform structure of the schema's top-level properties (their columns)."""
    root = resolve(schema, schema)
    properties = root.get("properties")
    if root.get("type") not in ("object", None) or not isinstance(properties, dict):
        raise TypedTableError("the schema must describe an object with properties (its columns)")
    if not properties:
        raise TypedTableError("the schema has no properties, so its table would have no columns")
    seen: dict[str, str] = {}
    for name in properties:
        _check_field(name, "property")
        if name.lower() in KEY_COLUMNS:
            raise TypedTableError(
                f"property {name!r} clashes with the table's own column {name.lower()!r}; "
                "rename the property"
            )
        if name.lower() in seen:
            raise TypedTableError(
                f"properties {seen[name.lower()]!r} and {name!r} differ only in case; DuckDB "
                "column names do not, so rename one"
            )
        seen[name.lower()] = name
    return {name: _type(sub, schema, 1) for name, sub in properties.items()}


def _check_field(name: str, what: str) -> None:
    if not FIELD_NAME.fullmatch(name):
        raise TypedTableError(
            f"{what} {name!r} cannot be a column name: use letters, digits, _ and - (starting "
            "with a letter or _, at most 64 characters)"
        )


def _type(node: Any, root: dict[str, Any], depth: int) -> Any:
    """The json_transform type of one value: a DuckDB type name, [item type] or {field: type}."""
    try:
        node = resolve(node, root)
    except SchemaCheckError as exc:
        raise TypedTableError(str(exc)) from None
    values = node.get("enum") if "enum" in node else [node["const"]] if "const" in node else None
    if isinstance(values, list):
        return _literal_type(values)
    kinds = _non_null_types(node, root)
    if kinds is None or len(kinds) != 1:
        return "JSON"
    branch, kind = kinds[0]
    if kind in SCALARS:
        return SCALARS[kind]
    if kind == "array" and depth < MAX_DEPTH:
        item = _type(branch.get("items", {}), root, depth + 1)
        return [item] if isinstance(item, str) and item != "JSON" else "JSON"
    fields = branch.get("properties")
    if not (kind == "object" and isinstance(fields, dict) and fields and depth < MAX_DEPTH):
        return "JSON"
    if all(FIELD_NAME.fullmatch(name) for name in fields):
        return {name: _type(sub, root, depth + 1) for name, sub in fields.items()}
    return "JSON"


def _non_null_types(
    node: dict[str, Any], root: dict[str, Any]
) -> list[tuple[dict[str, Any], str]] | None:
    """The node's non-null alternatives: (the schema that holds it, its JSON type); None when
    one of them may be anything."""
    declared = node.get("type")
    if isinstance(declared, str):
        return [] if declared == "null" else [(node, declared)]
    if isinstance(declared, list):
        return [(node, t) for t in declared if isinstance(t, str) and t != "null"]
    branches = node.get("anyOf") or node.get("oneOf")
    found: list[tuple[dict[str, Any], str]] = []
    if not isinstance(branches, list):
        return None
    for branch in branches:
        resolved = resolve(branch, root)
        inner = _non_null_types(resolved, root)
        if inner is None:
            return None
        found += inner
    return found


def _literal_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return "VARCHAR"
    if present and all(isinstance(v, bool) for v in present):
        return "BOOLEAN"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "BIGINT"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "DOUBLE"
    return "JSON"


@dataclass(frozen=True)
class TypedTable:
    """A job's typed output table: its (checked) name and the structure of its columns."""

    name: str
    columns: dict[str, Any]

    @classmethod
    def of(cls, name: str, schema: dict[str, Any]) -> "TypedTable":
        return cls(check_table_name(name), structure(schema))

    def sql(self, name: str) -> str:
        """sql/<name>.sql with this table's quoted name and structure literal put in."""
        literal = orjson.dumps(self.columns).decode()
        # the structure holds checked names and our type names only: no quote can get in
        assert _STRUCTURE_CHARS.fullmatch(literal), literal
        lines = [line for line in load_sql(name).splitlines() if not line.startswith("--")]
        text = "\n".join(lines).replace(_STRUCTURE_SLOT, f"'{literal}'")
        return re.sub(rf"\b{_TABLE_SLOT}\b", f'"{self.name}"', text)

    def check(self, con: "duckdb.DuckDBPyConnection") -> bool:
        """Whether the table exists; a TypedTableError if it has other columns than ours."""
        found = con.execute(load_sql("kinds/typed/table_columns"), {"table": self.name}).fetchall()
        if not found:
            return False
        wanted = con.execute(self.sql("kinds/typed/expected_columns")).fetchall()
        if [tuple(row) for row in found] != [tuple(row) for row in wanted]:
            raise TypedTableError(_shape_message(self.name, found, wanted))
        return True

    def ensure(self, con: "duckdb.DuckDBPyConnection") -> None:
        """Create the table if it is missing; refuse one of another shape under the name."""
        if not self.check(con):
            con.execute(self.sql("kinds/typed/create_table"))

    def load_batch(self, con: "duckdb.DuckDBPyConnection", job_name: str, batch_id: str) -> None:
        """Replace the rows of this batch's source rows with their latest valid outputs."""
        self.ensure(con)
        params = {"job_name": job_name, "batch_id": batch_id}
        con.execute(self.sql("kinds/typed/delete_batch_rows"), params)
        con.execute(self.sql("kinds/typed/insert_batch_rows"), params)

    def sync(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> None:
        """Make the job's rows match `outcomes`: drop those it no longer holds as valid (the
        job was restarted), add those missing (output_table was changed mid-job)."""
        self.ensure(con)
        params = {"job_name": job_name}
        con.execute(self.sql("kinds/typed/delete_stale_rows"), params)
        con.execute(self.sql("kinds/typed/insert_missing_rows"), params)


def _shape_message(name: str, found: list[Any], wanted: list[Any]) -> str:
    def show(rows: list[Any]) -> str:
        return ", ".join(f"{column} {kind}" for column, kind in rows)

    return (
        f"table {name!r} already exists with other columns ({show(found)}) than this job's "
        f"schema makes ({show(wanted)}): the schema changed under the same output_table. Set "
        f"output_table to a new name, or drop the table (drop table {name}) if its rows can go"
    )
