"""Outputs checked against a kind's output schema, vectorised in the parse SQL."""

import importlib
import sys
from pathlib import Path
from typing import Any, Literal

import duckdb
import pytest

from halfrate import kinds
from halfrate.kinds.base import JobBase, Kind
from halfrate.output_checks import SchemaCheckError, compile_checks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
staging = importlib.import_module("staging")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "ratio": {"type": "number", "exclusiveMinimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "priority": {"enum": [1, 2, 3]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "author": {"$ref": "#/$defs/Person"},
        "meta": {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]},
        "a/b~c": {"type": "boolean"},
    },
    "required": ["title", "score", "author"],
    "additionalProperties": False,
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": ["string", "null"]}},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
}
VALID = '{"title": "t", "score": 3, "author": {"name": "Zoë"}}'


class RecordJob(JobBase):
    kind: Literal["record"] = "record"


class Record(Kind):
    name, config = "record", RecordJob

    def output_schema(self, job: JobBase) -> dict[str, Any]:
        return SCHEMA


class Free(Kind):
    name, config = "record", RecordJob  # same job model, no schema: free text


def parse(
    tmp_path: Path, kind: Kind, texts: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[str, str | None]]:
    monkeypatch.setitem(kinds.KINDS, "record", kind)
    lines = [staging.succeeded(custom_id, text) for custom_id, text in texts.items()]
    lines.append(staging.succeeded("a1_cut", '{"title": "t', stop_reason="max_tokens"))
    raw = staging.write_jsonl(tmp_path / "r.jsonl", lines)
    job = RecordJob(name="r", source=tmp_path / "x.csv", instructions="Extract.")
    staging.parse_results(raw, tmp_path / "r.parquet", job, "b")
    rows = duckdb.execute(
        "select custom_id, outcome, invalid_reason from read_parquet(?)",
        [str(tmp_path / "r.parquet")],
    ).fetchall()
    assert ("a1_cut", "invalid_output", "stop_reason max_tokens: output truncated") in rows
    return {cid: (outcome, reason) for cid, outcome, reason in rows if cid != "a1_cut"}


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (VALID, None),
        (VALID[:-1] + ', "note": null, "tags": [], "priority": 2, "ratio": 0.5}', None),
        (VALID[:-1] + ', "meta": {"v": "x"}, "a/b~c": true}', None),
        ('{"score": 3, "author": {"name": "n"}}', "no 'title' field in the output"),
        (VALID.replace('"score": 3', '"score": "3"'), "score is a string, expected an integer"),
        (VALID.replace('"score": 3', '"score": 3.5'), "score is a number, expected an integer"),
        (VALID.replace('"score": 3', '"score": 7'), "score 7 is out of range (>= 1 and <= 5)"),
        (VALID[:-1] + ', "ratio": 0}', "ratio 0 is out of range (> 0)"),
        (
            VALID[:-1] + ', "tags": ["a", 1]}',
            "tags has an item that is an integer, expected a string",
        ),
        (VALID[:-1] + ', "priority": 4}', "priority 4 is not one of [1, 2, 3]"),
        (VALID[:-1] + ', "note": 5}', "note is an integer, expected a string or null"),
        (VALID.replace('"name": "Zoë"', '"email": null'), "no 'author.name' field in the output"),
        (VALID.replace('"Zoë"', '"Zoë", "x": 1'), "unexpected key 'x' in author"),
        (VALID.replace('{"name": "Zoë"}', "null"), "author is null, expected an object"),
        (VALID[:-1] + ', "meta": {}}', "no 'meta.v' field in the output"),
        (VALID[:-1] + ', "a/b~c": "yes"}', "a/b~c is a string, expected a boolean"),
        (VALID[:-1] + ', "extra": 1}', "unexpected key 'extra' in the output"),
        ("[1]", "not a JSON object"),
        ('"a string"', "not a JSON object"),
        ("\n\t " + VALID + "\n", None),
        ("title: t", "not JSON"),
    ],
)
def test_outputs_are_checked_against_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, reason: str | None
) -> None:
    got = parse(tmp_path, Record(), {"a1_x": output}, monkeypatch)
    assert got["a1_x"] == ("succeeded" if reason is None else "invalid_output", reason)


def test_a_kind_without_schema_accepts_any_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = parse(
        tmp_path, Free(), {"a1_t": "Plain words.", "a1_j": "[1]", "a1_n": None}, monkeypatch
    )
    assert got == {
        "a1_t": ("succeeded", None),
        "a1_j": ("succeeded", None),
        "a1_n": ("invalid_output", "no text or tool_use output"),
    }


def test_checks_follow_local_refs_only() -> None:
    compiled = compile_checks(SCHEMA)
    checks = compiled.checks
    assert [c["name"] for c in checks][:3] == ["title", "score", "ratio"]
    assert compiled.root_keys == list(SCHEMA["properties"])
    assert {c["path"] for c in checks} >= {"/author/name", "/a~1b~0c", "/meta/v"}
    with pytest.raises(SchemaCheckError, match="only local references"):
        compile_checks({"type": "object", "properties": {"x": {"$ref": "http://x/s.json"}}})
    with pytest.raises(SchemaCheckError, match="does not resolve"):
        compile_checks({"type": "object", "properties": {"x": {"$ref": "#/$defs/Nope"}}})


def test_a_recursive_schema_compiles(tmp_path: Path) -> None:
    tree = {
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    assert 10 < len(compile_checks(tree).checks) < 40
