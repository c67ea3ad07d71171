"""Every DDL and view runs on a fresh DuckDB file, twice; SQL files are found by name."""

import csv
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from halfrate.sql import SQL_DIR, SqlFileError, load_sql
from halfrate.warehouse import KIND_VIEWS, SCHEMA_TABLES, SCHEMA_VIEWS, connect, ensure_schema

TABLES = {
    "jobs": ["job_name"],
    "batches": ["batch_id"],
    "requests": ["batch_id", "custom_id"],
    "results": ["batch_id", "custom_id"],
    "outcomes": ["job_name", "row_id", "request"],
    "job_rows": ["job_name", "row_id"],
    "quarantine": ["job_name", "row_number"],
    "prices": ["model", "effective_from", "prompt_tokens_over"],
}
STOP_TABLES = {"user_cancels": ["batch_id"], "unsent_requests": ["job_name", "custom_id"]}
ESTIMATE_TABLES = {"job_estimates": ["job_name", "estimate"]}
VIEWS = {
    "row_outcomes": ["job_name", "row_number"],
    "batch_costs": ["batch_id"],
    "job_costs": ["job_name"],
    "labels": ["job_name", "row_id"],
}
ESTIMATE_VIEWS = {"job_estimate_errors": ["job_name", "estimate"]}


def test_schema_creates_every_table_and_view_on_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "warehouse.duckdb"
    con = connect(path, retry_seconds=0)
    ensure_schema(con)
    ensure_schema(con)  # idempotent: if-not-exists tables, create-or-replace views
    names = dict(
        con.execute("select table_name, table_type from information_schema.tables").fetchall()
    )
    tables = TABLES | STOP_TABLES | ESTIMATE_TABLES
    assert {n: names.get(n) for n in tables} == dict.fromkeys(tables, "BASE TABLE")
    views = VIEWS | ESTIMATE_VIEWS
    assert {n: names.get(n) for n in views} == dict.fromkeys(views, "VIEW")
    for view in views:
        assert con.execute(f"select count(*) from {view}").fetchone() == (0,)
    con.close()
    assert path.exists()


def test_every_schema_file_starts_with_its_grain() -> None:
    for name in SCHEMA_TABLES + SCHEMA_VIEWS + KIND_VIEWS:
        first = load_sql(name).splitlines()[0]
        assert first.startswith("-- grain: one row per"), name


def test_every_sql_file_is_snake_case_and_one_statement() -> None:
    files = sorted(SQL_DIR.rglob("*.sql"))
    assert len(files) > 20
    for path in files:
        name = path.relative_to(SQL_DIR).with_suffix("").as_posix()
        assert load_sql(name)  # the name is a valid snake_case path
        statements = duckdb.extract_statements(path.read_text())
        assert len(statements) == 1, f"{path}: {len(statements)} statements"


def test_prices_table_matches_the_csv(con: duckdb.DuckDBPyConnection) -> None:
    rows = list(csv.DictReader((Path(__file__).parents[2] / "halfrate" / "prices.csv").open()))
    assert con.execute("select count(*) from prices").fetchone() == (len(rows),)
    reads = con.execute(
        "select effective_from::varchar, cache_read from prices where model = 'claude-sonnet-5-5'"
        " order by effective_from"
    ).fetchall()
    assert reads == [("2020-01-01", Decimal("0.2")), ("2026-10-07", Decimal("0.1"))]
    assert con.execute(
        "select input, cache_read from prices where model = 'claude-opus-5-5'"
    ).fetchall() == [(Decimal(4), Decimal("0.2"))]  # 0.05x read: not the 0.1x rule
    bands = con.execute(
        "select prompt_tokens_over, input, cache_write_1h from prices"
        " where model = 'claude-haiku-5-5' order by prompt_tokens_over"
    ).fetchall()
    assert bands == [(0, Decimal("0.1"), Decimal("0.2")), (100_000, Decimal("0.5"), None)]


def test_an_old_prices_table_is_replaced_by_the_banded_one(tmp_path: Path) -> None:
    con = connect(tmp_path / "old.duckdb", retry_seconds=0)
    con.execute(
        "create table prices (model varchar, effective_from date, input double, output double,"
        " cache_write_5m double, cache_write_1h double, cache_read double,"
        " batch_discount double, source varchar, primary key (model, effective_from))"
    )
    ensure_schema(con)  # a warehouse made before price bands: refreshed, not broken
    assert con.execute("select count(*) from prices where prompt_tokens_over > 0").fetchone() == (
        1,
    )
    con.close()


@pytest.mark.parametrize("name", ["../secrets", "Schema/Jobs", "schema/jobs.sql", ""])
def test_load_sql_refuses_names_that_are_not_snake_case_paths(name: str) -> None:
    with pytest.raises(SqlFileError, match="snake_case"):
        load_sql(name)


def test_load_sql_names_the_missing_file() -> None:
    with pytest.raises(SqlFileError, match=r"schema/nope\.sql: no such SQL file"):
        load_sql("schema/nope")
