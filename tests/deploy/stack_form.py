"""The deployment's run form on the real stack: the schema `prefect deploy` wrote, Prefect's check
of a run's parameters, the form in the UI (filled in and submitted in a headless Chromium).

These tests are collected in test_deployments.py (imported there), so that every test using the
stack stays in one module: one stack per xdist worker.
"""

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import Page, browser
from prefect_stack import BIN, OUTPUT, REPO, Stack

FORM_FLOWS = ("batch-job", "pilot-job")  # the deployments whose form takes a job's overrides


def _deployments(stack: Stack) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": list(FORM_FLOWS)}}}
    return list(stack.api("POST", "/deployments/filter", body))


def _nulls(schema: Any, where: str = "") -> list[str]:
    """Where a schema holds what Prefect's form draws as 'Property is type "None"' tabs."""
    if isinstance(schema, list):
        return [w for i, s in enumerate(schema) for w in _nulls(s, f"{where}/{i}")]
    if not isinstance(schema, dict):
        return []
    found = [where] if "anyOf" in schema or schema.get("type") == "null" else []
    if schema.get("default", "") is None:
        found.append(f"{where}/default")
    return found + [w for k, v in schema.items() for w in _nulls(v, f"{where}/{k}")]


def test_deployed_parameter_schemas_are_forms_without_null(stack: Stack) -> None:
    deployments = _deployments(stack)
    assert {d["name"] for d in deployments} >= {"intents", "intents-nightly", "trivia-pilot"}
    for dep in deployments:
        schema = dep["parameter_openapi_schema"]
        assert not _nulls(schema), (dep["name"], _nulls(schema))
        assert dep["enforce_parameter_schema"] is True
        job = schema["properties"]["job"]
        assert job["$ref"] == "#/definitions/JobSpec" and job["default"] == {}
        spec = schema["definitions"]["JobSpec"]
        assert spec["additionalProperties"] is False
        assert all(p["description"] and "default" not in p for p in spec["properties"].values())
        assert spec["properties"]["max_tokens"]["minimum"] == 1


@pytest.mark.parametrize(
    ("job", "field", "reason"),
    [
        ({"max_tokens": 0}, "job.max_tokens", "less than the minimum of 1"),
        ({"name": "Bad Name"}, "job.name", "does not match"),
        ({"cache_ttl": "2h"}, "job.cache_ttl", "is not one of"),
        ({"labels": ["a", "a"]}, "job.labels", "non-unique elements"),
        ({"max_attempts": "three"}, "job.max_attempts", "'three' is not valid"),
        ({"colour": "blue"}, "job", "'colour' was unexpected"),
    ],
)
def test_a_bad_value_is_refused_when_the_run_is_created(
    stack: Stack, tmp_path: Path, job: dict[str, Any], field: str, reason: str
) -> None:
    before = len(stack.api("POST", "/flow_runs/filter", {}))
    with pytest.raises(httpx.HTTPStatusError) as refused:
        stack.create_run("batch-job/intents", {"job": job}, stack.run_env("fast", tmp_path))
    assert refused.value.response.status_code == 409
    detail = refused.value.response.json()["detail"]
    assert f"Validation failed for field '{field}'" in detail and reason in detail, detail
    assert len(stack.api("POST", "/flow_runs/filter", {})) == before  # no run was made


def test_prefect_deployment_run_refuses_a_bad_param(stack: Stack) -> None:
    bad = "job=" + json.dumps({"max_tokens": 0})
    done = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "batch-job/intents", "--param", bad],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = " ".join((done.stdout + done.stderr).split())
    assert "Validation failed for field 'job.max_tokens'" in out, out
    assert "0 is less than the minimum of 1" in out


def test_a_bad_value_the_schema_cannot_express_stops_the_first_task(
    stack: Stack, tmp_path: Path
) -> None:
    job = {"name": "form-deadline", "deadline": "tomorrow"}
    run_id = stack.create_run("batch-job/intents", {"job": job}, stack.run_env("fast", tmp_path))
    run = stack.wait_for_state(run_id, {"FAILED"}, timeout=120)
    message = run["state"]["message"]
    assert "job parameter: invalid value" in message and "job.deadline:" in message, message
    assert "intents.yaml" not in message  # the file is not what is wrong
    (task,) = stack.task_runs(run_id)  # nothing after the first task ran
    assert task["state_type"] == "FAILED"
    assert not (tmp_path / "jobs" / "form-deadline").exists()


def _form_url(stack: Stack, deployment: str) -> str:
    dep = stack.api("GET", f"/deployments/name/{deployment}")
    return f"{stack.ui_url}/v2/deployments/deployment/{dep['id']}/run"


def _open_form(page: Page, url: str) -> None:
    page.goto(url)
    page.wait(_LABEL.format(key="compare") + " !== undefined", timeout=90)
    time.sleep(1)  # the form fills in the deployment's values


_LABEL = (
    "Array.from(document.querySelectorAll('label')).find(l => l.textContent.startsWith('{key} '))"
)
_SUBMIT = (
    "Array.from(document.querySelectorAll('button')).find(b => b.textContent.trim() === 'Submit')"
)


def test_the_run_form_reads_well_and_shows_every_key(stack: Stack, tmp_path: Path) -> None:
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "prefect-ui-form.png"
    shot.unlink(missing_ok=True)
    spec = _deployments(stack)[0]["parameter_openapi_schema"]["definitions"]["JobSpec"]
    with browser(tmp_path / "profile") as page:
        _open_form(page, _form_url(stack, "batch-job/intents"))
        text = page.text()
        page.screenshot(shot)
    assert "Property is type" not in text
    for key, prop in spec["properties"].items():
        assert f"{key} (Optional)" in text, key
        assert " ".join(prop["description"].split()) in " ".join(text.split()), key
    assert "data/samples/intents.yaml" in text  # the deployment's job file, filled in
    assert shot.stat().st_size > 50_000


def test_the_untouched_form_submits_and_a_bad_value_cannot(stack: Stack, tmp_path: Path) -> None:
    # The runs stay scheduled (the pool is paused): a run of the deployment's own job would
    # write into the checkout's data/ and call the real API.
    stack.prefect("work-pool", "pause", "halfrate-local")
    made: list[str] = []
    try:
        with browser(tmp_path / "profile") as page:
            made += _submit_form(page, stack, {})
            made += _submit_form(page, stack, {"max_tokens": "0"})
            page.wait("!!" + _LABEL.format(key="max_tokens"))  # still on the form
            message = page.js(
                f"{_LABEL.format(key='max_tokens')}.closest('.group')"
                ".querySelector('input').validationMessage"
            )
    finally:
        for run_id in made:
            stack.api("DELETE", f"/flow_runs/{run_id}")
        stack.prefect("work-pool", "resume", "halfrate-local")
    assert len(made) == 1, made  # the second submit was refused in the form itself
    assert "greater than or equal to 1" in message, message


def _submit_form(page: Page, stack: Stack, values: dict[str, str]) -> list[str]:
    """Fill in the intents form (text inputs by key), press Submit; the runs it created."""
    dep = stack.api("GET", "/deployments/name/batch-job/intents")
    body = {"deployments": {"id": {"any_": [dep["id"]]}}}
    before = {r["id"] for r in stack.api("POST", "/flow_runs/filter", body)}
    _open_form(page, _form_url(stack, "batch-job/intents"))
    for key, value in values.items():
        page.js(
            f"(() => {{ const input = {_LABEL.format(key=key)}.closest('.group')"
            ".querySelector('input, textarea');"
            "const proto = Object.getPrototypeOf(input);"
            "Object.getOwnPropertyDescriptor(proto, 'value').set.call(input, "
            f"{json.dumps(value)}); input.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"
        )
    page.js(f"{_SUBMIT}.click()")
    time.sleep(3)
    runs = stack.api("POST", "/flow_runs/filter", body)
    new = [r for r in runs if r["id"] not in before]
    for run in new:  # the form sends the deployment's values, no empty overrides
        assert run["parameters"] == dep["parameters"] | {"restart": False}, run["parameters"]
    return [r["id"] for r in new]
