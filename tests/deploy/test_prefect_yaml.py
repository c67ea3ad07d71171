"""prefect.yaml: every entrypoint is a Prefect flow, and the deployments keep their promises."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]


def deployments() -> list[dict[str, Any]]:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    return list(spec["deployments"])


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_entrypoint_imports_as_a_flow(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the pull step's working directory
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    assert set(deployment.get("parameters", {})) <= set(flow.parameters.properties)


def test_pipeline_deployments_never_overlap_and_carry_no_key() -> None:
    pipeline = [d for d in deployments() if d["entrypoint"] == "flows/batch_job.py:batch_job"]
    assert len(pipeline) >= 2
    for d in pipeline:
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        assert d["work_pool"]["name"] == "halfrate-local"
        env = d["work_pool"]["job_variables"]["env"]
        assert not any("KEY" in name and "BLOCK" not in name for name in env), env
        assert (REPO / d["parameters"]["job_file"]).is_file()
    schedules = [s for d in pipeline for s in d.get("schedules", [])]
    assert any(s.get("cron") and s.get("timezone") for s in schedules)


def test_job_parameters_override_the_job_file() -> None:
    from halfrate.config import JobSpec, resolve_job

    for d in deployments():
        if "job" in d.get("parameters", {}):
            job = resolve_job(REPO / d["parameters"]["job_file"], JobSpec(**d["parameters"]["job"]))
            for key, value in d["parameters"]["job"].items():
                assert getattr(job, key) == value


def test_chain_deployments_run_valid_jobs_in_order_one_at_a_time() -> None:
    from halfrate.config import resolve_job

    chains = [d for d in deployments() if d["entrypoint"] == "flows/chain.py:job_chain"]
    assert chains
    for d in chains:
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        jobs = [resolve_job(REPO / f) for f in d["parameters"]["job_files"]]
        names = [job.name for job in jobs]
        for position, job in enumerate(jobs):  # a job source is an earlier stage
            assert job.upstream is None or job.upstream in names[:position]


def test_every_deployment_sends_halfrate_warnings_to_the_run_logs() -> None:
    """Prefect's extra loggers: the core's warnings land in the flow run's logs in the UI."""
    for d in deployments():
        env = d["work_pool"]["job_variables"]["env"]
        assert "halfrate" in env["PREFECT_LOGGING_EXTRA_LOGGERS"].split(","), d["name"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "export PREFECT_LOGGING_EXTRA_LOGGERS=halfrate" in makefile  # the worker too
