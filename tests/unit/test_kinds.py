"""The kind plug-ins: the registry, the discriminated JobConfig union, and the override form."""

import json
import typing
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl
import pyarrow as pa
import pytest
from pydantic import Field, ValidationError

from halfrate import kinds
from halfrate.build import BuildError, build_requests, custom_id_for, custom_ids_for, request_for
from halfrate.config import JobConfigError, JobSpec, parse_job, resolve_job
from halfrate.extract import extract_rows
from halfrate.kinds import KINDS, PLANNED, JobConfig, UnknownKindError, kind_named, kind_of
from halfrate.kinds.base import JobBase, Kind, UserContent
from halfrate.kinds.label import LABEL, LabelJob
from halfrate.ledger import Ledger
from halfrate.settings import Settings
from halfrate.template import PromptTemplate
from halfrate.workspace import JobPaths

LABEL_KEYS = {"name": "t", "source": "x.csv", "instructions": "Label it.", "labels": ["a", "b"]}


def test_the_registry_holds_every_implemented_kind_and_the_union_matches_it() -> None:
    assert list(KINDS) == ["label", "extract", "generate", "judge"] and KINDS["label"] is LABEL
    members = typing.get_args(typing.get_args(JobConfig)[0]) or (typing.get_args(JobConfig)[0],)
    assert {m.model_fields["kind"].default for m in members} == set(KINDS)
    assert {kind.config for kind in KINDS.values()} == set(members)
    for name, kind in KINDS.items():
        assert kind.name == name and issubclass(kind.config, JobBase)
        assert kind.config.model_fields["kind"].default == name
    assert not set(PLANNED) & set(KINDS)


def test_kind_of_finds_the_plug_in_and_refuses_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kind_of(parse_job(LABEL_KEYS)) is LABEL
    with pytest.raises(UnknownKindError, match="kind 'lable' is unknown; use one of: label, ext"):
        kind_named("lable")
    monkeypatch.setattr(kinds, "PLANNED", ("summarise",))
    with pytest.raises(UnknownKindError, match="kind 'summarise' is not implemented yet"):
        kind_named("summarise")
    with pytest.raises(UnknownKindError, match=r"judge \(planned: summarise\)$"):
        kind_named("lable")


def test_a_job_without_kind_is_a_label_job() -> None:
    job = parse_job(LABEL_KEYS)
    assert isinstance(job, LabelJob) and job.kind == "label"


def test_errors_name_the_kind_and_its_keys() -> None:
    with pytest.raises(JobConfigError) as err:
        parse_job(LABEL_KEYS | {"schema": {"type": "object"}, "max_tokens": 0}, "jobs/t.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "jobs/t.yaml: invalid job configuration"
    assert "  - max_tokens: Input should be greater than or equal to 1" in lines
    [schema] = [line for line in lines if line.startswith("  - schema:")]
    assert schema.startswith(
        "  - schema: kind label has no key 'schema' (it is a key of kind extract, generate); "
        "its keys are: name, kind,"
    )
    assert schema.endswith("labels, gold_column")
    with pytest.raises(JobConfigError, match="- kind: kind 'grade' is unknown"):
        parse_job(LABEL_KEYS | {"kind": "grade"})
    with pytest.raises(JobConfigError, match="- kind: kind 3 is unknown"):
        parse_job(LABEL_KEYS | {"kind": 3})


def test_a_key_of_another_kind_says_whose_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    class GradeJob(JobBase):
        kind: Literal["grade"] = "grade"
        rubric: str = Field(description="How to grade.")

    class Grade(Kind):
        name, config = "grade", GradeJob

    monkeypatch.setitem(KINDS, "grade", Grade())
    with pytest.raises(JobConfigError, match="has no key 'rubric' \\(it is a key of kind grade\\)"):
        parse_job(LABEL_KEYS | {"rubric": "strict"})


def test_the_override_form_is_generated_from_every_kinds_fields() -> None:
    fields = JobSpec.model_fields
    assert set(fields) == {name for kind in KINDS.values() for name in kind.config.model_fields}
    assert all(not f.is_required() and f.default is None for f in fields.values())
    assert (
        fields["max_tokens"].description
        == "Output cap per request. Default: 256 (kind judge: 1024)."
    )
    assert fields["labels"].description.startswith("(kind label) Allowed labels")
    schema = JobSpec.model_json_schema()["properties"]  # tests/unit/test_job_form.py: the form
    assert {"maximum": 128_000, "minimum": 1, "type": "integer"}.items() <= schema[
        "max_tokens"
    ].items()
    assert schema["kind"]["enum"] == list(KINDS)
    for bad in ({"max_tokens": 0}, {"name": "Bad Name"}, {"labelz": ["x"]}, {"kind": "grade"}):
        with pytest.raises(ValidationError):
            JobSpec.model_validate(bad)


def test_overrides_can_switch_the_text_to_a_prompt(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: t\nsource: x.csv\ninstructions: i\nlabels: [a, b]\n")
    job = resolve_job(path, JobSpec(prompt="Subject: {subject}\n\n{body}"))
    assert job.template.source_columns == ["subject", "body"]
    path.write_text(path.read_text() + "text_column: body\n")
    with pytest.raises(JobConfigError, match="give either prompt or text_column, not both"):
        resolve_job(path, JobSpec(prompt="{subject}"))


def test_a_job_reads_back_from_its_own_dump(tmp_path: Path) -> None:
    """job.json holds model_dump(); status, load and resumes parse it again."""
    for keys in (
        LABEL_KEYS,
        LABEL_KEYS | {"prompt": "{a}: {b}"},
        LABEL_KEYS | {"gold_column": "g"},
    ):
        job = parse_job(keys)
        assert parse_job(job.model_dump(mode="json")) == job
        assert parse_job(orjson.loads(job.model_dump_json())).fingerprint() == job.fingerprint()


def test_label_fingerprints_did_not_change_with_the_refactor() -> None:
    """A label job created before kinds were plug-ins resumes: same settings, same hash."""
    job = parse_job(
        {
            "name": "x",
            "source": "/data/a.csv",
            "instructions": "Label it.",
            "labels": ["a", "b"],
            "gold_column": "g",
            "text_column": "body",
            "cache_ttl": "5m",
        }
    )
    assert job.fingerprint() == "02e275deea86a523"  # computed by the code at cf15d03
    with_prompt = parse_job(LABEL_KEYS | {"prompt": "{body}"})
    assert (
        with_prompt.fingerprint() != parse_job(LABEL_KEYS | {"text_column": "body"}).fingerprint()
    )


def test_a_label_request_is_unchanged() -> None:
    job = parse_job(LABEL_KEYS | {"cache_ttl": "1h", "max_tokens": 64})
    request = request_for(job, "a1_x", "hello")
    assert orjson.dumps(request) == orjson.dumps(
        {
            "custom_id": "a1_x",
            "params": {
                "model": "claude-sonnet-5",
                "max_tokens": 64,
                "system": [
                    {
                        "type": "text",
                        "text": "Label it.",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
                "messages": [{"role": "user", "content": "hello"}],
                "output_config": {
                    "format": {
                        "type": "json_schema",
                        "schema": {
                            "type": "object",
                            "properties": {"label": {"type": "string", "enum": ["a", "b"]}},
                            "required": ["label"],
                            "additionalProperties": False,
                        },
                    }
                },
            },
        }
    )


class FreeJob(JobBase):
    kind: Literal["free"] = "free"


class Free(Kind):
    """A kind without an output schema: any non-empty, untruncated text is valid."""

    name, config = "free", FreeJob


def test_a_kind_without_output_schema_sends_no_output_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(kinds.KINDS, "free", Free())
    job = FreeJob(name="f", source=tmp_path / "x.csv", instructions="Write.", cache_ttl="none")
    params: dict[str, Any] = dict(request_for(job, "a1_x", "hi")["params"])
    assert params == {
        "model": "claude-sonnet-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "Write."}],
        "messages": [{"role": "user", "content": "hi"}],
    }


class BlocksJob(JobBase):
    kind: Literal["blocks"] = "blocks"


class Blocks(Kind):
    """A kind whose rows send content blocks (as a document kind would), built in Polars."""

    name, config = "blocks", BlocksJob

    def user_content(self, job: JobBase, template: PromptTemplate) -> UserContent:
        block = pl.struct(type=pl.lit("text"), text=template.render())
        blocks = pl.struct(c=pl.concat_list(block, block)).struct.json_encode()
        return UserContent(blocks.str.slice(5, blocks.str.len_chars() - 6), "content")


def test_a_kind_can_send_content_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(kinds.KINDS, "blocks", Blocks())
    source = tmp_path / "in.csv"
    source.write_text('id,title,body\n1,Hi,"a ""quoted"" body"\n2,Zoë,\n')
    job = BlocksJob(
        name="b", source=source, instructions="Read.", prompt="{title}: {body}", cache_ttl="none"
    )
    paths = JobPaths(tmp_path / "job")
    extract_rows(job, paths, Settings())
    assert pl.read_parquet(paths.rows).columns == ["row_number", "row_id", "content"]
    [file] = build_requests(
        job, paths, Ledger.create(paths.ledger), 1, paths.rows, Settings(), False
    )
    lines = (paths.root / file.path).read_bytes().splitlines()
    for line, (row_id, text) in zip(
        lines, [("1", 'Hi: a "quoted" body'), ("2", "Zoë: ")], strict=True
    ):
        blocks = [{"type": "text", "text": text}] * 2
        assert line == orjson.dumps(request_for(job, f"a1_{row_id}", blocks))
    assert json.loads(lines[0])["params"]["messages"][0]["content"][1]["text"].endswith('" body')


def test_custom_ids_can_tell_apart_several_requests_of_one_row() -> None:
    ids = {custom_id_for(r, 1, q) for r in ("x", "x_ab", "ab_x") for q in ("", "ab", "ba")}
    assert len(ids) == 9  # the request key sits before the `_`: no row id can collide
    assert custom_id_for("x", 2, "ba") == "a2ba_x"
    row_ids = pa.array(["x", "a.b"])
    assert custom_ids_for(row_ids, 3, "ab").to_pylist() == [
        custom_id_for("x", 3, "ab"),
        custom_id_for("a.b", 3, "ab"),
    ]
    assert len(custom_id_for("k" * 56, 10, "abcd")) == 64  # the API's limit
    with pytest.raises(BuildError, match="request key 'AB'"):
        custom_id_for("x", 1, "AB")
