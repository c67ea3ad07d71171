"""The extract and generate kinds: their config, requests, output checks and warehouse loads."""

import importlib
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from anthropic import transform_schema

from halfrate.build import RequestTemplate, request_for
from halfrate.config import JobConfigError, parse_job
from halfrate.kinds import kind_of
from halfrate.kinds.extract import ExtractJob
from halfrate.kinds.generate import GenerateJob
from halfrate.load import load_batch, load_job
from halfrate.record_schema import _model_schema_json
from halfrate.results import stage_outcomes
from halfrate.retry import plan_retry
from halfrate.warehouse import ensure_schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
staging = importlib.import_module("staging")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "year", "code"],
    "properties": {
        "title": {"type": "string", "maxLength": 20},
        "year": {"type": ["integer", "null"], "minimum": 1900},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "when": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
}
BASE = {"name": "books", "source": "x.csv", "instructions": "Read the record."}


def extract(**keys: Any) -> ExtractJob:
    job = parse_job(BASE | {"kind": "extract", "schema": SCHEMA} | keys)
    assert isinstance(job, ExtractJob)
    return job


def generate(**keys: Any) -> GenerateJob:
    job = parse_job(BASE | {"kind": "generate"} | keys)
    assert isinstance(job, GenerateJob)
    return job


def config_error(keys: dict[str, Any]) -> str:
    with pytest.raises(JobConfigError) as err:
        parse_job(BASE | keys)
    return str(err.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"kind": "extract"}, "an extract job needs schema (a JSON Schema) or schema_model"),
        (
            {
                "kind": "extract",
                "schema": {"type": "object", "properties": {"a": {"type": "text"}}},
            },
            "- schema: not a valid JSON Schema: 'text' is not valid under any of the given "
            "schemas (at properties/a/type)",
        ),
        (
            {
                "kind": "extract",
                "schema": {"type": "object", "properties": {"a": {"maxLength": 3}}},
            },
            "- schema: a has no type; give it a `type` (or anyOf, enum or const)",
        ),
        (
            {"kind": "extract", "schema": {"type": "array", "items": {"type": "string"}}},
            "- schema: the schema must describe an object with properties (its columns)",
        ),
        (
            {
                "kind": "extract",
                "schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
            },
            "- schema: $ref '#/$defs/A' does not resolve within the schema",
        ),
        (
            {"kind": "extract", "schema_model": "no_such_module:Book"},
            "- schema_model: 'no_such_module:Book': cannot import 'no_such_module' "
            "(ModuleNotFoundError: No module named 'no_such_module'); it must be importable",
        ),
        (
            {"kind": "extract", "schema_model": "json:JSONDecoder"},
            "- schema_model: 'json:JSONDecoder': JSONDecoder in json is not a pydantic model",
        ),
        (
            {"kind": "extract", "schema_model": "json"},
            "- schema_model: String should match pattern",
        ),
        (
            {"kind": "extract", "schema": SCHEMA, "output_table": "Books!"},
            "- output_table: output_table 'Books!': use lowercase letters, digits and _",
        ),
        (
            {"kind": "extract", "schema": SCHEMA, "output_table": "outcomes"},
            "one of the warehouse's own tables or views; pick another",
        ),
        (
            {"kind": "extract", "schema": SCHEMA, "gold_columns": {"author": "a"}},
            "gold_columns: 'author' is not a property of the schema",
        ),
        (
            {"kind": "generate", "name": "2books", "schema": SCHEMA},
            "output_table '2books': use lowercase letters, digits and _ (starting with a letter "
            "or _, at most 63 characters) (the job name's default): set output_table",
        ),
        (
            {"kind": "generate", "labels": ["a"]},
            "kind generate has no key 'labels' (it is a key of kind label)",
        ),
        (
            {"kind": "label", "labels": ["a", "b"], "retry_truncated": True},
            "(it is a key of kind generate)",
        ),
    ],
)
def test_bad_config_is_refused_before_anything_is_sent(keys: dict[str, Any], message: str) -> None:
    assert message in config_error(keys)


def test_a_pydantic_model_gives_the_schema(tmp_path: Path) -> None:
    (tmp_path / "bookmodels.py").write_text(
        "from pydantic import BaseModel\n"
        "class Author(BaseModel):\n    name: str\n"
        "class Book(BaseModel):\n    title: str\n    year: int | None\n    author: Author\n",
        encoding="utf-8",
    )  # the tests run in tmp_path: the current directory, where users keep their models
    job = extract(schema=None, schema_model="bookmodels:Book")
    assert job.record_schema is not None and set(job.record_schema["properties"]) == {
        "title",
        "year",
        "author",
    }
    table = kind_of(job).typed_table(job)  # type: ignore[attr-defined]
    assert table.columns == {"title": "VARCHAR", "year": "BIGINT", "author": {"name": "VARCHAR"}}
    assert job.fingerprint() != extract(schema=None, schema_model="bookmodels:Author").fingerprint()
    assert "give either schema or schema_model, not both" in config_error(
        {"kind": "extract", "schema": SCHEMA, "schema_model": "bookmodels:Book"}
    )
    _model_schema_json.cache_clear()


def test_output_table_defaults_to_the_job_name_and_is_not_fingerprinted() -> None:
    job = extract(name="my-books")
    assert job.table_name == "my_books"
    assert extract(name="my-books", output_table="books").fingerprint() == job.fingerprint()
    assert generate().fingerprint() != generate(retry_truncated=True).fingerprint()


def test_the_request_sends_what_the_api_accepts_of_the_schema() -> None:
    job = extract(max_tokens=300)
    params = request_for(job, "a1_x", "text")["params"]
    sent = params["output_config"]["format"]
    assert sent["type"] == "json_schema"
    normalised = orjson.loads(orjson.dumps(SCHEMA))
    normalised["properties"]["year"] = {
        "anyOf": [{"type": "integer", "minimum": 1900}, {"type": "null"}]
    }
    assert sent["schema"] == transform_schema(normalised)
    year = sent["schema"]["properties"]["year"]["anyOf"][0]
    assert year == {"type": "integer", "description": "{minimum: 1900}"}  # the API ignores it
    assert "maxLength" not in orjson.dumps(sent).decode().replace("{maxLength: 20}", "")
    assert "output_config" not in request_for(generate(), "a1_x", "t")["params"]


@pytest.mark.parametrize("job", [extract(), generate(schema=SCHEMA), generate()])
def test_the_fast_request_lines_are_byte_identical_to_the_reference(job: Any) -> None:
    template = RequestTemplate(job)
    texts = ['a "quoted" text\n', "Zoë 😀"]
    lines = template.lines(pa.array(["a1_1", "a1_2"]), pa.array(texts)).to_pylist()
    assert lines == [
        orjson.dumps(request_for(job, cid, text)) + b"\n"
        for cid, text in zip(["a1_1", "a1_2"], texts, strict=True)
    ]


def parsed(tmp_path: Path, job: Any, lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    raw = staging.write_jsonl(tmp_path / "results" / "msgbatch_01.jsonl", lines)
    out = tmp_path / "results" / "msgbatch_01.parsed.parquet"
    staging.parse_results(raw, out, job, "msgbatch_01")
    cursor = duckdb.execute("select * from read_parquet(?)", [str(out)])
    names = [d[0] for d in cursor.description or []]
    return {r[1]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def record(**fields: Any) -> str:
    return orjson.dumps({"title": "Dune", "year": 1965, "code": "DUN"} | fields).decode()


def test_outputs_are_checked_against_the_whole_schema(tmp_path: Path) -> None:
    rows = parsed(
        tmp_path,
        extract(),
        [
            staging.succeeded("a1_ok", record(when="2024-01-31", tags=["a"])),
            staging.succeeded("a1_type", record(year="1965")),
            staging.succeeded("a1_range", record(year=1800)),
            staging.succeeded("a1_long", record(title="x" * 21)),
            staging.succeeded("a1_pattern", record(code="dune")),
            staging.succeeded("a1_format", record(when="31/01/2024")),
            staging.succeeded("a1_items", record(tags=["a", "b", "c"])),
            staging.succeeded("a1_extra", record(isbn="1")),
            staging.succeeded("a1_cut", '{"title": "Du', stop_reason="max_tokens"),
        ],
    )
    reasons = {cid: (r["outcome"], r["invalid_reason"]) for cid, r in rows.items()}
    assert reasons == {
        "a1_ok": ("succeeded", None),
        "a1_type": ("invalid_output", "year is a string, expected an integer or null"),
        "a1_range": ("invalid_output", "year 1800 is out of range (>= 1900)"),
        "a1_long": ("invalid_output", "title must be shorter than or equal to 20 characters"),
        "a1_pattern": ("invalid_output", "code must match pattern ^[A-Z]{3}$"),
        "a1_format": ("invalid_output", "when must be date"),
        "a1_items": ("invalid_output", "tags must contain less than or equal to 2 items"),
        "a1_extra": ("invalid_output", "unexpected key 'isbn' in the output"),
        "a1_cut": ("invalid_output", "stop_reason max_tokens: output truncated"),
    }
    assert rows["a1_long"]["output_valid"] is False and rows["a1_ok"]["output_valid"] is True


def test_a_schema_the_sql_checks_cover_is_not_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import halfrate.results

    def fail(*args: Any) -> int:
        raise AssertionError("full checks ran for a schema the SQL checks cover")

    monkeypatch.setattr(halfrate.results, "apply_full_checks", fail)
    simple = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    rows = parsed(tmp_path, extract(schema=simple), [staging.succeeded("a1_ok", record())])
    assert rows["a1_ok"]["outcome"] == "succeeded"


@pytest.mark.parametrize(("retry", "outcome"), [(False, "truncated"), (True, "invalid_output")])
def test_a_generate_job_keeps_a_truncated_text_unless_told_to_retry(
    tmp_path: Path, retry: bool, outcome: str
) -> None:
    job = generate(retry_truncated=retry)
    rows = parsed(
        tmp_path,
        job,
        [
            staging.succeeded("a1_ok", "A full answer."),
            staging.succeeded("a1_cut", "An answer that was cu", stop_reason="max_tokens"),
            staging.succeeded("a1_empty", None),
        ],
    )
    assert {cid: r["outcome"] for cid, r in rows.items()} == {
        "a1_ok": "succeeded",
        "a1_cut": outcome,
        "a1_empty": "invalid_output",
    }
    assert rows["a1_cut"]["invalid_reason"] == "stop_reason max_tokens: output truncated"


@pytest.mark.parametrize(("retry", "resent"), [(False, ["e"]), (True, ["c", "e"])])
def test_truncated_rows_are_resent_only_with_retry_truncated(
    tmp_path: Path, retry: bool, resent: list[str]
) -> None:
    staged = staging.stage_job(
        tmp_path, generate(retry_truncated=retry), [("a", None), ("c", None), ("e", None)]
    )
    record_ = staging.stage_batch(
        staged,
        "msgbatch_01",
        ["a", "c", "e"],
        [
            staging.succeeded("a1_a", "fine"),
            staging.succeeded("a1_c", "cut sho", stop_reason="max_tokens"),
            staging.errored("a1_e"),
        ],
    )
    stage_outcomes(
        staged.paths.results_file("msgbatch_01"),
        staged.paths.outcomes_file("msgbatch_01"),
        staged.job,
        "msgbatch_01",
    )
    assert record_.batch_id == "msgbatch_01"
    todo = plan_retry(staged.paths, staged.ledger, 2)
    assert todo is not None
    import polars as pl

    assert pl.read_parquet(todo)["row_id"].to_list() == resent


def load_twice(tmp_path: Path, job: Any, lines: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    staged = staging.stage_job(tmp_path, job, [(r, None) for r in ("a", "b", "c", "d")])
    record_ = staging.stage_batch(staged, "msgbatch_01", ["a", "b", "c", "d"], lines)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    load_job(con, job, staged.paths, staged.ledger, staged)
    load_batch(con, job, staged.paths, record_)
    load_batch(con, job, staged.paths, record_)
    load_job(con, job, staged.paths, staged.ledger, staged)
    return con


def test_extract_loads_valid_records_into_its_typed_table_idempotently(tmp_path: Path) -> None:
    con = load_twice(
        tmp_path,
        extract(max_attempts=1),
        [
            staging.succeeded("a1_a", record(tags=["x"])),
            staging.succeeded("a1_b", record(year=None, when="2020-02-02")),
            staging.succeeded("a1_c", record(code="bad")),
            staging.errored("a1_d"),
        ],
    )
    assert con.execute("select * from books order by row_id").fetchall() == [
        ("books", "a", 1, "Dune", 1965, "DUN", None, ["x"]),
        ("books", "b", 1, "Dune", None, "DUN", "2020-02-02", None),
    ]
    assert dict(
        con.execute("select final_state, count(*) from row_outcomes group by 1").fetchall()
    ) == {
        "succeeded": 2,
        "invalid_output": 1,
        "exhausted": 1,
    }


def test_generate_lands_every_answer_in_generations_idempotently(tmp_path: Path) -> None:
    con = load_twice(
        tmp_path,
        generate(max_attempts=2),
        [
            staging.succeeded("a1_a", "A whole answer.", tokens=staging.usage(30, 4)),
            staging.succeeded(
                "a1_b", "Cut sh", stop_reason="max_tokens", tokens=staging.usage(30, 2)
            ),
            staging.errored("a1_c"),
            staging.succeeded("a1_d", None, stop_reason="refusal"),
        ],
    )
    rows = con.execute(
        "select row_id, attempt, outcome, text, stop_reason, truncated, output_tokens "
        "from generations order by row_id"
    ).fetchall()
    assert rows == [
        ("a", 1, "succeeded", "A whole answer.", "end_turn", False, 4),
        ("b", 1, "truncated", "Cut sh", "max_tokens", True, 2),
        ("d", 1, "invalid_output", None, "refusal", False, 8),
    ]
    states = dict(
        con.execute("select final_state, count(*) from row_outcomes group by 1").fetchall()
    )
    assert states == {"succeeded": 1, "truncated": 1, "pending": 2}
    [(reason,)] = con.execute("select reason from row_outcomes where row_id = 'b'").fetchall()
    assert reason == "stop_reason max_tokens: output truncated"
