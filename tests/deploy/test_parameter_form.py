"""The flows' parameter schemas as `prefect deploy` makes them, and Prefect's own check of a run's
parameters against them (what its server runs before it creates a run), without a server.

The same on the real stack, with the UI's form: stack_form.py (collected in test_deployments.py).
"""

import re
from typing import Any

import pytest
from prefect import Flow
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError, validate
from stack_form import _nulls

from flows.batch_job import batch_job
from flows.pilot import pilot_job
from halfrate.config import NO_OVERRIDES, JobSpec

FLOWS = [batch_job, pilot_job]


def schema_of(flow: Flow[..., Any]) -> dict[str, Any]:
    """As `prefect deploy` computes it (prefect/cli/deploy/_core.py) and stores it."""
    return parameter_schema(flow).model_dump_for_openapi()


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_the_form_has_no_null_branch_nor_null_default(flow: Flow[..., Any]) -> None:
    schema = schema_of(flow)
    assert not _nulls(schema), _nulls(schema)
    job = schema["properties"]["job"]
    assert job == {
        "$ref": "#/definitions/JobSpec",
        "default": {},
        "description": "Keys that override the job file's; a field left empty keeps the file's "
        "value.",
        "position": 1,
        "title": "job",
    }
    assert schema["properties"]["job_file"]["default"] == ""
    assert schema["definitions"]["JobSpec"] == JobSpec.model_json_schema()


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"max_tokens": 5, "cache_ttl": "5m", "labels": ["a", "b"], "prime_cache": False},
        {"max_tokens": None, "deadline": None},  # null: keep the file's value
        {"scale": [1, 5], "criteria": {"accuracy": "Is it right?"}, "kind": "judge"},
    ],
)
def test_prefect_accepts_good_and_empty_overrides(job: dict[str, Any]) -> None:
    for flow in FLOWS:
        validate({"job_file": "x.yaml", "job": job}, schema_of(flow), raise_on_error=True)
        validate({}, schema_of(flow), raise_on_error=True)


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"max_tokens": 0}, "job.max_tokens"),
        ({"max_tokens": 128_001}, "job.max_tokens"),
        ({"max_cost_usd": 0}, "job.max_cost_usd"),
        ({"name": "Bad Name"}, "job.name"),
        ({"kind": "grade"}, "job.kind"),
        ({"mode": "fast"}, "job.mode"),
        ({"labels": ["only"]}, "job.labels"),
        ({"verdicts": ["yes", ""]}, "job.verdicts[1]"),
        ({"criteria": {"Bad Name": "x"}}, "job.criteria"),
        ({"scale": [1, 2, 3]}, "job.scale"),
        ({"output_table": "Bad-Table"}, "job.output_table"),
        ({"pilot_rows": 0}, "job.pilot_rows"),
        ({"prime_cache": "yes"}, "job.prime_cache"),
        ({"labelz": ["a", "b"]}, "job"),
    ],
)
def test_prefect_refuses_a_bad_value_naming_the_field(job: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"Validation failed for field '{field}'")):
        validate({"job": job}, schema_of(batch_job), raise_on_error=True)


def test_the_pilots_rows_are_checked_too() -> None:
    with pytest.raises(ValidationError, match="Validation failed for field 'rows'"):
        validate({"rows": 10_001}, schema_of(pilot_job), raise_on_error=True)
    validate({"rows": 0}, schema_of(pilot_job), raise_on_error=True)  # 0: the job's pilot_rows


def test_the_flows_default_job_overrides_nothing() -> None:
    assert batch_job.fn.__defaults__ == ("", NO_OVERRIDES, False)
    assert NO_OVERRIDES.model_dump() == {}
