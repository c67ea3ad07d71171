"""The record kinds' tables and views: keys, latest attempt wins, loads idempotent, accuracy."""

from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pytest
import staging

from halfrate.config import parse_job
from halfrate.load import load_batch, load_job
from halfrate.sql import load_sql
from halfrate.warehouse import KIND_TABLES, KIND_VIEWS, ensure_schema

SCHEMA = {
    "type": "object",
    "properties": {
        "sender": {"type": "string"},
        "when": {"type": "string"},
        "reply": {"type": "boolean"},
        "list": {"type": ["string", "null"]},
    },
    "required": ["sender", "when", "reply", "list"],
}


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    return con


def job(kind: str, **keys: Any) -> Any:
    base = {"name": f"{kind}-job", "kind": kind, "source": "x.csv", "instructions": "Go."}
    return parse_job(base | {"max_attempts": 2} | keys)


def load_all(con: duckdb.DuckDBPyConnection, staged: staging.Staged) -> None:
    load_job(con, staged.job, staged.paths, staged.ledger, staged)
    for record in staged.ledger.records():
        load_batch(con, staged.job, staged.paths, record)


def two_attempts(
    tmp_path: Path, config: Any, first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> staging.Staged:
    staged = staging.stage_job(tmp_path, config, [(r, None) for r in "abc"])
    staging.stage_batch(staged, "b1", ["a", "b", "c"], first)
    retried = [line["custom_id"].removeprefix("a2_") for line in second]
    staging.stage_batch(
        staged, "b2", retried, second, attempt=2, created_at="2026-11-02T12:00:00.000000Z"
    )
    return staged


def snapshot(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return con.execute(f'select * from "{table}" order by all').fetchall()


def test_every_kind_table_and_view_exists_and_states_its_grain(
    con: duckdb.DuckDBPyConnection,
) -> None:
    names = dict(
        con.execute("select table_name, table_type from information_schema.tables").fetchall()
    )
    assert names["generations"] == "BASE TABLE" and names["extract_accuracy"] == "VIEW"
    for name in (*KIND_TABLES, *KIND_VIEWS, "kinds/typed/create_table"):
        assert load_sql(name).startswith("-- grain: one row per"), name


def test_generations_keep_the_latest_answer_per_row(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    staged = two_attempts(
        tmp_path,
        job("generate", retry_truncated=True),
        [
            staging.succeeded("a1_a", "Done."),
            staging.succeeded("a1_b", "Cut", stop_reason="max_tokens"),
            staging.expired("a1_c"),
        ],
        [staging.succeeded("a2_b", "Whole now."), staging.succeeded("a2_c", "Late but here.")],
    )
    load_all(con, staged)
    first = snapshot(con, "generations")
    load_all(con, staged)
    assert snapshot(con, "generations") == first
    rows = con.execute(
        "select row_id, attempt, outcome, text, truncated from generations order by row_id"
    ).fetchall()
    assert rows == [
        ("a", 1, "succeeded", "Done.", False),
        ("b", 2, "succeeded", "Whole now.", False),
        ("c", 2, "succeeded", "Late but here.", False),
    ]
    total, distinct = con.execute(
        "select count(*), count(distinct (job_name, row_id)) from generations"
    ).fetchone() or (0, 0)
    assert total == distinct == 3


def test_the_typed_table_and_the_accuracy_of_each_field(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    record = {"sender": "Ann@X.org", "when": "2002-08-22T13:38:22Z", "reply": True, "list": None}
    config = job("extract", schema=SCHEMA, output_table="mails", gold_columns={"sender": "s"})
    staged = two_attempts(
        tmp_path,
        config,
        [
            staging.succeeded("a1_a", orjson.dumps(record).decode()),
            staging.succeeded("a1_b", '{"sender": 3}'),
            staging.errored("a1_c"),
        ],
        [
            staging.succeeded("a2_b", orjson.dumps(record | {"sender": "bob@y.org"}).decode()),
            staging.succeeded("a2_c", orjson.dumps(record | {"when": "yesterday"}).decode()),
        ],
    )
    gold = [
        {
            "sender": " ann@x.org",
            "when": "2002-08-22 15:38:22+02:00",
            "reply": "true",
            "list": None,
        },
        {"sender": "carl@z.org", "when": "2002-08-22T13:38:22Z", "reply": "false", "list": "l"},
        {"sender": "bob@y.org", "when": "2002-08-22T13:38:22Z", "reply": "true", "list": None},
    ]  # what extract packs into rows.parquet's gold from gold_columns
    rows = pl.read_parquet(staged.paths.rows).with_columns(
        gold=pl.Series([orjson.dumps(g).decode() for g in gold])
    )
    rows.write_parquet(staged.paths.rows)
    load_all(con, staged)
    first = snapshot(con, "mails")
    load_all(con, staged)
    assert snapshot(con, "mails") == first
    assert con.execute(
        "select row_id, attempt, sender, reply, list from mails order by 1"
    ).fetchall() == [
        ("a", 1, "Ann@X.org", True, None),
        ("b", 2, "bob@y.org", True, None),
        ("c", 2, "Ann@X.org", True, None),
    ]
    accuracy = con.execute(
        "select field, rows, correct from extract_accuracy order by field"
    ).fetchall()
    assert accuracy == [
        ("list", 3, 2),  # null matches null; b's gold says 'l'
        ("reply", 3, 2),  # 'true' matches true
        ("sender", 3, 1),  # a: trimmed, lowercased, the same; b and c: other senders
        ("when", 3, 2),  # a: the same instant in another zone; c: 'yesterday' is not a time
    ]
