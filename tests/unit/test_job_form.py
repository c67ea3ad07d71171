"""The `job` overrides as a form (halfrate/job_form.py): plain types, words, limits, no defaults;
and errors in an override that name the override, not the job file."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from halfrate.config import NO_OVERRIDES, JobConfigError, JobSpec, resolve_job
from halfrate.job_form import job_keys
from halfrate.kinds import KINDS
from halfrate.kinds.base import JobBase, Kind

REPO = Path(__file__).resolve().parents[2]
INTENTS = REPO / "data" / "samples" / "intents.yaml"


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema, with where it is."""
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from walk(value, f"{path}/{i}")


def test_every_field_is_a_plain_type_with_a_title_words_and_no_default() -> None:
    schema = JobSpec.model_json_schema()
    assert schema["additionalProperties"] is False and "$defs" not in schema
    for where, sub in walk(schema):
        # Prefect's form: an anyOf is a tab per branch, a null one reads 'Property is type "None"'
        assert "anyOf" not in sub and "$ref" not in sub and sub.get("type") != "null", where
    properties = schema["properties"]
    assert list(properties) == list(job_keys())
    for name, prop in properties.items():
        # a default would be filled in, and sent as an override of the job file's value
        assert "default" not in prop, name
        assert prop["title"] == name and prop["description"].endswith("."), name
        assert "type" in prop, (
            name
        )  # Prefect's check treats a typed key without default as nullable


def test_the_words_say_the_default_and_the_limits() -> None:
    properties = JobSpec.model_json_schema()["properties"]
    max_tokens = properties["max_tokens"]
    assert max_tokens["description"] == (
        "Output cap per request. Default: 256 (kind judge: 1024). Limits: from 1 to 128,000."
    )
    assert (max_tokens["minimum"], max_tokens["maximum"], max_tokens["type"]) == (
        1,
        128_000,
        "integer",
    )
    assert properties["name"]["pattern"] in properties["name"]["description"]
    assert properties["max_cost_usd"]["description"].endswith("Limits: above 0.")
    assert properties["cache_ttl"]["enum"] == ["none", "5m", "1h"]
    assert properties["cache_ttl"]["description"].endswith("Default: 1h.")
    assert properties["kind"] | {"description": ""} == {
        "title": "kind",
        "type": "string",
        "enum": list(KINDS),
        "description": "",
        "position": 1,
    }
    assert properties["kind"]["description"].endswith("Default: label.")
    # a boolean is a select whose empty state keeps the file's value (a checkbox says false)
    assert properties["prime_cache"]["enum"] == [True, False]
    assert properties["prime_cache"]["description"].endswith("Default: true.")
    labels = properties["labels"]
    assert (labels["minItems"], labels["uniqueItems"]) == (2, True)
    assert labels["description"].startswith("(kind label) Allowed labels")
    assert labels["description"].endswith("Limits: at least 2 items, no repeats.")
    schema = properties["schema"]["description"]
    assert schema.startswith("(kinds extract, generate) JSON Schema of one record")
    assert properties["instructions"]["description"].endswith("Default in kind judge: empty.")
    criteria = properties["criteria"]
    assert criteria["propertyNames"]["pattern"] == "^[a-z][a-z0-9_]{0,39}$"
    assert "at most 16 entries" in criteria["description"]
    assert properties["deadline"]["description"].startswith("When the rows must be done")


def test_a_kinds_new_key_is_in_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    class GradeJob(JobBase):
        kind: Literal["grade"] = "grade"
        passes: int = Field(2, ge=1, le=5, description="Grading passes per row")

    class Grade(Kind):
        name, config = "grade", GradeJob

    monkeypatch.setitem(KINDS, "grade", Grade())
    passes = job_keys()["passes"]
    assert passes.kinds == ("grade",)
    assert passes.help == "(kind grade) Grading passes per row. Default: 2."


def test_overrides_dump_only_what_they_set() -> None:
    assert NO_OVERRIDES.model_dump() == {} and JobSpec().model_dump(mode="json") == {}
    assert JobSpec(max_tokens=5, labels=["a", "b"]).model_dump() == {
        "max_tokens": 5,
        "labels": ["a", "b"],
    }


def test_an_override_the_form_cannot_check_is_named_as_the_parameter() -> None:
    with pytest.raises(JobConfigError) as err:
        resolve_job(INTENTS, JobSpec(deadline="tomorrow"))
    lines = str(err.value).splitlines()
    assert lines[0] == "job parameter: invalid value"
    assert lines[1].startswith("  - job.deadline: deadline 'tomorrow' is neither a duration nor")
    assert "intents.yaml" not in str(err.value)
    with pytest.raises(JobConfigError) as err:  # a check of the model about one key
        resolve_job(INTENTS, JobSpec(labels=["only"]))
    assert str(err.value).splitlines()[1:] == [
        "  - job.labels: a label job needs at least two labels"
    ]
    with pytest.raises(
        JobConfigError, match=r"^job parameter: invalid value\n  - job.verdicts: kind"
    ):
        resolve_job(INTENTS, JobSpec(verdicts=["yes", "no"]))


def test_the_cli_names_its_set_values_and_the_file_keeps_its_own_errors(tmp_path: Path) -> None:
    with pytest.raises(JobConfigError, match=r"^--set values: invalid value\n  - --set deadline: "):
        resolve_job(
            INTENTS,
            JobSpec(deadline="soon"),
            overrides="--set values",
            override_key="--set {key}",
        )
    bad = tmp_path / "bad.yaml"
    bad.write_text(INTENTS.read_text() + "max_tokens: 0\n")
    with pytest.raises(JobConfigError) as err:  # the file's key, and a key of each
        resolve_job(bad, JobSpec(deadline="soon", prompt="{text}", text_column="body"))
    lines = str(err.value).splitlines()
    assert lines[0] == f"{bad} and the job parameter: invalid job configuration"
    assert "  - max_tokens: Input should be greater than or equal to 1" in lines
    assert any(line.startswith("  - job.deadline: ") for line in lines)
