"""The typed output table: schema -> DuckDB types, safe identifiers, idempotent loads."""

from typing import Any

import duckdb
import pytest

from halfrate.typed_table import TypedTable, TypedTableError, check_table_name, structure
from halfrate.warehouse import ensure_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}}},
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "ranks": {"type": "array", "items": {"type": ["integer", "null"]}},
        "address": {"$ref": "#/$defs/Address"},
        "nested": {
            "type": "object",
            "properties": {
                "when": {"type": "string"},
                "n": {"type": "number"},
                "l": {"type": "array", "items": {"type": "boolean"}},
            },
        },
        "maybe_int": {"type": ["integer", "null"]},
        "maybe_str": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "nullable_obj": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
        "choice": {"enum": ["a", "b", None]},
        "level": {"enum": [1, 2, 3]},
        "fixed": {"const": True},
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "two_types": {"type": ["string", "number"]},
        "rows": {"type": "array", "items": {"type": "object"}},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "free": {"type": "object"},
        "odd-name": {"type": "string"},
    },
}
COLUMNS = {
    "job_name": "VARCHAR",
    "row_id": "VARCHAR",
    "attempt": "UTINYINT",
    "name": "VARCHAR",
    "count": "BIGINT",
    "score": "DOUBLE",
    "ok": "BOOLEAN",
    "tags": "VARCHAR[]",
    "ranks": "BIGINT[]",
    "address": "STRUCT(city VARCHAR)",
    "nested": 'STRUCT("when" VARCHAR, n DOUBLE, l BOOLEAN[])',
    "maybe_int": "BIGINT",
    "maybe_str": "VARCHAR",
    "nullable_obj": "STRUCT(city VARCHAR)",
    "choice": "VARCHAR",
    "level": "BIGINT",
    "fixed": "BOOLEAN",
    "either": "JSON",
    "two_types": "JSON",
    "rows": "JSON",
    "matrix": "JSON",
    "free": "JSON",
    "odd-name": "VARCHAR",
}
OUTPUT = (
    '{"name":"Ann","count":3,"score":0.5,"ok":true,"tags":["x","y"],"ranks":[1,null],'
    '"address":{"city":"Oslo"},"nested":{"when":"now","n":2,"l":[true]},"maybe_int":null,'
    '"maybe_str":"s","nullable_obj":null,"choice":"b","level":2,"fixed":true,"either":7,'
    '"two_types":"t","rows":[{"k":1}],"matrix":[[1,2]],"free":{"a":[1]},"odd-name":"o"}'
)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    return con


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "select column_name, data_type from duckdb_columns() where table_name = ? "
        "order by column_index",
        [table],
    ).fetchall()
    return dict(rows)


def answer(con: duckdb.DuckDBPyConnection, row_id: str, output: str | None, batch: str) -> None:
    custom_id = f"a1_{row_id}"
    con.execute("delete from outcomes where row_id = ?", [row_id])
    con.execute("insert into requests values (?, ?, 'job', ?, 1, '')", [batch, custom_id, row_id])
    con.execute(
        "insert into outcomes values ('job', ?, ?, ?, 1, 'succeeded', ?, ?, ?, ?, null, null, '')",
        [
            row_id,
            custom_id,
            batch,
            "succeeded" if output else "invalid_output",
            output,
            output is not None,
            None if output else "bad",
        ],
    )


def test_every_schema_type_maps_to_its_duckdb_type(con: duckdb.DuckDBPyConnection) -> None:
    table = TypedTable.of("out", SCHEMA)
    table.ensure(con)
    assert columns(con, "out") == COLUMNS
    assert list(structure(SCHEMA)) == list(SCHEMA["properties"])  # schema order


def test_a_batch_loads_its_valid_outputs_typed_and_twice_changes_nothing(
    con: duckdb.DuckDBPyConnection,
) -> None:
    answer(con, "r1", OUTPUT, "b1")
    answer(con, "r2", None, "b1")  # invalid: not in the typed table
    table = TypedTable.of("out", SCHEMA)
    table.load_batch(con, "job", "b1")
    first = con.execute("select * from out").fetchall()
    table.load_batch(con, "job", "b1")
    assert con.execute("select * from out").fetchall() == first
    [row] = con.execute(
        "select row_id, count, tags, ranks, address.city, nested, choice, either, rows, free,"
        ' "odd-name" from out'
    ).fetchall()
    assert row == (
        "r1",
        3,
        ["x", "y"],
        [1, None],
        "Oslo",
        {"when": "now", "n": 2.0, "l": [True]},
        "b",
        "7",
        '[{"k":1}]',
        '{"a":[1]}',
        "o",
    )


def test_a_later_attempt_replaces_the_row_and_sync_follows_outcomes(
    con: duckdb.DuckDBPyConnection,
) -> None:
    table = TypedTable.of("out", SCHEMA)
    answer(con, "r2", None, "b1")
    table.load_batch(con, "job", "b1")
    assert con.execute("select count(*) from out").fetchone() == (0,)
    answer(con, "r2", OUTPUT.replace('"count":3', '"count":4'), "b2")
    table.load_batch(con, "job", "b2")
    assert con.execute("select row_id, count from out").fetchall() == [("r2", 4)]
    moved = TypedTable.of("moved", SCHEMA)  # output_table changed mid-job: filled on sync
    moved.sync(con, "job")
    assert con.execute("select row_id, count from moved").fetchall() == [("r2", 4)]
    con.execute("delete from outcomes")  # the job was restarted: its old rows go
    table.sync(con, "job")
    assert con.execute("select count(*) from out").fetchone() == (0,)


def test_a_changed_schema_under_the_same_table_is_refused_clearly(
    con: duckdb.DuckDBPyConnection,
) -> None:
    TypedTable.of("out", SCHEMA).ensure(con)
    changed = {"type": "object", "properties": {"name": {"type": "integer"}}}
    with pytest.raises(TypedTableError) as err:
        TypedTable.of("out", changed).check(con)
    message = str(err.value)
    assert message.startswith("table 'out' already exists with other columns (")
    assert (
        "than this job's schema makes (job_name VARCHAR, row_id VARCHAR, attempt UTINYINT, "
        "name BIGINT): the schema changed under the same output_table" in message
    )
    assert "Set output_table to a new name, or drop the table (drop table out)" in message
    assert TypedTable.of("other", changed).check(con) is False


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Emails", "use lowercase letters, digits and _"),
        ("1emails", "use lowercase letters, digits and _"),
        ('x"; drop table jobs; --', "use lowercase letters, digits and _"),
        ("outcomes", "one of the warehouse's own tables or views"),
        ("labels", "one of the warehouse's own tables or views"),
    ],
)
def test_table_names_are_checked(name: str, problem: str) -> None:
    with pytest.raises(TypedTableError, match=problem):
        check_table_name(name)


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({'a"b': {"type": "string"}}, "property 'a\"b' cannot be a column name"),
        ({"a b": {"type": "string"}}, "cannot be a column name"),
        ({"row_id": {"type": "string"}}, "clashes with the table's own column 'row_id'"),
        ({"Attempt": {"type": "string"}}, "clashes with the table's own column 'attempt'"),
        ({"Name": {"type": "string"}, "name": {"type": "string"}}, "differ only in case"),
        ({}, "has no properties"),
    ],
)
def test_property_names_must_be_safe_columns(properties: dict[str, Any], problem: str) -> None:
    with pytest.raises(TypedTableError, match=problem):
        structure({"type": "object", "properties": properties})


def test_nested_names_that_are_not_safe_keep_the_object_as_json() -> None:
    schema = {
        "type": "object",
        "properties": {"o": {"type": "object", "properties": {"it's": {"type": "string"}}}},
    }
    assert structure(schema) == {"o": "JSON"}
