"""Issue 8: every input gets a fast, clear answer. CLI refusals here never start Prefect.

`run_flow` is replaced by a stand-in that fails the test if called, so each refusal is proven
to happen before anything starts; the exit codes are checked against canned summaries.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from cli import commands
from cli.app import app
from cli.output import Canceled
from halfrate import pipeline
from halfrate.config import JobConfigError
from halfrate.settings import get_settings
from halfrate.summary import FailureRow, JobSummary
from halfrate_emulator import EmulatorOptions, EmulatorServer

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"
runner = CliRunner()
KEYS = {
    "name": "tickets",
    "kind": "label",
    "source": "tickets.csv",
    "id_column": "id",
    "text_column": "text",
    "labels": ["billing", "other"],
    "instructions": "Label the ticket.",
}


def write_job(folder: Path, file_name: str = "job.yaml", **keys: Any) -> Path:
    (folder / "tickets.csv").write_text("id,text\n1,my card was charged twice\n2,hello\n")
    path = folder / file_name
    path.write_text(yaml.safe_dump(KEYS | keys, sort_keys=False))
    return path


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.fixture(autouse=True)
def no_flow(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """`run_flow` fails the test unless a test gives it an outcome; calls are recorded."""
    calls: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the flow must not start for a refused job")

    monkeypatch.setattr(commands, "run_flow", refuse)
    return calls


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key is set (none of these tests reaches the API: the key check is replaced)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    get_settings.cache_clear()
    monkeypatch.setattr("halfrate.preflight.check_key", lambda gateway: None)


@pytest.mark.parametrize(
    ("keys", "text", "names", "expected"),
    [
        ({"colour": "blue"}, None, "job.yaml", "kind label has no key 'colour'; its keys are:"),
        ({"max_tokens": "lots"}, None, "job.yaml", "max_tokens: Input should be a valid integer"),
        ({"source": "nope.csv"}, None, "nope.csv", "source not found; check the job's `source`"),
        ({"kind": "summarize"}, None, "job.yaml", "kind 'summarize' is unknown; use one of:"),
        ({"text_column": "body"}, None, "tickets.csv", "'body' not found; available columns:"),
        ({"prompt": "Ticket: {body}"}, None, "tickets.csv", "{body} name no column"),
        ({}, "- name: x\n- kind: label\n", "job.yaml", "a job file is a mapping of keys"),
        ({}, "name: x\nlabels: [a\n", "job.yaml", "not valid YAML at line 3, column 1"),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "missing-source",
        "bad-kind",
        "missing-column",
        "unknown-placeholder",
        "yaml-list",
        "yaml-syntax",
    ],
)
@pytest.mark.parametrize("command", ["run", "estimate"])
def test_bad_job_files_are_refused_before_anything_starts(
    tmp_path: Path,
    with_key: None,
    command: str,
    keys: dict[str, Any],
    text: str | None,
    names: str,
    expected: str,
) -> None:
    job = write_job(tmp_path, **keys)
    if text is not None:
        job.write_text(text)
    code, out = cli(command, str(job))
    assert code == 2, out
    assert out.startswith("error: ") and "Traceback" not in out
    assert names in out and expected in out
    assert not (tmp_path / "jobs").exists()  # no job folder was made


def test_messages_keep_their_brackets(tmp_path: Path, with_key: None) -> None:
    """Rich took `[a-z0-9]` for markup: the pattern printed as '^{0,47}$'."""
    code, out = cli("run", str(write_job(tmp_path, name="Tickets 2026!")))
    assert code == 2
    assert "name: String should match pattern '^[a-z0-9][a-z0-9_-]{0,47}$'" in out
    job = write_job(tmp_path)
    job.write_text("name: x\nsource: [unclosed\nlabels: [a\n")
    code, out = cli("estimate", str(job))
    assert code == 2
    assert "(while parsing a flow sequence at line 2, column 9)" in out
    assert "    labels: [a\n          ^" in out  # the YAML error's context line, not empty


def test_no_key_points_at_the_emulator(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    for command in ("run", "estimate"):
        code, out = cli(command, str(job))
        assert code == 2
        assert "no ANTHROPIC_API_KEY is set" in out
        assert f"halfrate {command} {job} --emulator" in out.replace("\n", "")
    assert not (tmp_path / "jobs").exists()


def test_a_refused_key_is_found_before_the_flow_starts(tmp_path: Path) -> None:
    with EmulatorServer(tmp_path / "emu", options=EmulatorOptions(api_key="right")) as server:
        os.environ["ANTHROPIC_BASE_URL"] = server.base_url
        os.environ["ANTHROPIC_API_KEY"] = "wrong"
        get_settings.cache_clear()
        code, out = cli("run", str(write_job(tmp_path)))
        assert server.admin.audit() == []
    assert code == 2, out
    assert "the API refused a first, free call (list: 401 authentication_error" in out
    assert "Traceback" not in out


def test_an_unwritable_workdir_is_named(tmp_path: Path, with_key: None) -> None:
    (tmp_path / "afile").write_text("not a folder")
    os.environ["HALFRATE_WORKDIR"] = str(tmp_path / "afile" / "jobs")
    get_settings.cache_clear()
    code, out = cli("run", str(write_job(tmp_path)))
    assert code == 2
    assert f"HALFRATE_WORKDIR={tmp_path}/afile/jobs: {tmp_path}/afile is not a folder" in out
    assert "point HALFRATE_WORKDIR at a writable folder" in out


def prepared(job_file: Path) -> Path:
    """The job folder after a first (extract-only) run of the job: what a rerun must not lose."""
    settings = get_settings()
    job = pipeline.prepare(str(job_file), None, False, settings, run=True)
    pipeline.extract(job, settings)
    return settings.workdir / job.name


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_job_name_reused_with_other_settings_is_refused_and_nothing_lost(
    tmp_path: Path, with_key: None
) -> None:
    folder = prepared(write_job(tmp_path))
    before = snapshot(folder)
    code, out = cli("run", str(write_job(tmp_path, model="claude-haiku-4-5")))
    assert code == 2
    assert "job 'tickets' already exists" in out and "(changed: model)" in out
    assert "--restart" in out and "new name" in out
    assert snapshot(folder) == before


def test_a_changed_source_is_refused_early_and_nothing_lost(tmp_path: Path, with_key: None) -> None:
    job = write_job(tmp_path)
    folder = prepared(job)
    before = snapshot(folder)
    with open(tmp_path / "tickets.csv", "a") as fh:
        fh.write("3,a new row\n")
    code, out = cli("run", str(job))
    assert code == 2
    assert "tickets.csv: the source changed since this job first extracted it" in out
    assert snapshot(folder) == before
    code, out = cli("estimate", str(job))  # the same answer from estimate
    assert code == 2 and "the source changed" in out


def test_an_unknown_model_is_a_warning_naming_the_known_ones(
    tmp_path: Path, with_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "run_flow", lambda *a, **k: outcome({"succeeded": 2}))
    code, out = cli("run", str(write_job(tmp_path, model="claude-sonet-5")))
    assert code == 0, out
    assert "warning: model 'claude-sonet-5' is not in halfrate/prices.csv" in out
    assert "claude-sonnet-5" in out.split("Known models:")[1]


def outcome(states: dict[str, int], staged: int = 0) -> JobSummary:
    failures = [
        FailureRow(row_number=3, row_id=None, final_state=s, reason="missing id", attempts=0)
        for s in states
        if s != "succeeded"
    ]
    return JobSummary.empty("tickets", "label", "claude-sonnet-5", "w.duckdb").model_copy(
        update={
            "final_states": states,
            "rows": sum(states.values()),
            "rows_not_succeeded": sum(n for s, n in states.items() if s != "succeeded"),
            "failures": failures,
            "staged_not_loaded": staged,
        }
    )


def cancelled(*args: Any, **kwargs: Any) -> Any:
    raise Canceled("job tickets canceled by the user at 2026-11-29T10:00:00Z")


def refused(*args: Any, **kwargs: Any) -> Any:
    raise JobConfigError("budget: raise max_cost_usd")


def crashed(*args: Any, **kwargs: Any) -> Any:
    raise KeyError("bug")


@pytest.mark.parametrize(
    ("flow", "code", "says"),
    [
        (lambda *a, **k: outcome({"succeeded": 2}), 0, "succeeded 2"),
        (
            lambda *a, **k: outcome({"succeeded": 45, "exhausted": 10, "quarantined": 7}),
            3,
            "45 succeeded, 10 exhausted, 7 quarantined: see the failures table",
        ),
        (lambda *a, **k: outcome({"succeeded": 1, "pending": 1}, staged=1), 4, "halfrate load"),
        (cancelled, 5, "canceled by the user"),
        (refused, 2, "error: budget: raise max_cost_usd"),
        (crashed, 1, "KeyError: 'bug' (unexpected; rerunning resumes the job; `--debug`"),
    ],
    ids=["ok", "rows-not-succeeded", "staged", "canceled", "refused", "unexpected"],
)
def test_exit_codes(
    tmp_path: Path,
    with_key: None,
    monkeypatch: pytest.MonkeyPatch,
    flow: Callable[..., Any],
    code: int,
    says: str,
) -> None:
    monkeypatch.setattr(commands, "run_flow", flow)
    got, out = cli("run", str(write_job(tmp_path)))
    assert got == code, out
    assert says in out.replace("\n", " ")
    assert "Traceback" not in out
    if code == 3:
        assert "(no id)" in out and "missing id" in out  # the rows, by number


def test_debug_shows_the_traceback(
    tmp_path: Path, with_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "run_flow", refused)
    code, out = cli("run", str(write_job(tmp_path)), "--debug")
    assert code == 2 and "Traceback" in out and "error: budget" in out
    monkeypatch.setattr(commands, "run_flow", crashed)
    result = runner.invoke(app, ["run", str(write_job(tmp_path)), "--debug"])
    assert isinstance(result.exception, KeyError)  # raised as it is


def test_estimate_on_the_emulator_needs_no_key(tmp_path: Path) -> None:
    code, out = cli("estimate", str(write_job(tmp_path)), "--emulator")
    assert code == 0, out
    assert "--emulator: using the built-in emulator at http://127.0.0.1:" in out
    assert "Cost estimate for tickets" in out and "Counted on the built-in emulator" in out
    assert "ANTHROPIC_API_KEY" not in os.environ and "ANTHROPIC_BASE_URL" not in os.environ


def test_emulator_help_keeps_every_flag_whole_at_80_columns() -> None:
    env = dict(os.environ, COLUMNS="80", TERM="dumb")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "halfrate"), "emulator", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert "…" not in out
    for flag in ("--processing-seconds", "--no-shuffle-results", "--errored-custom-id-pattern"):
        assert flag in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_a_refusal_never_imports_prefect(tmp_path: Path) -> None:
    """The checks run before Prefect is even imported (so before any server starts)."""
    job = write_job(tmp_path, colour="blue")
    probe = (
        "import sys\n"
        "from cli.app import app\n"
        "try:\n"
        f"    app(['run', {str(job)!r}])\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'prefect' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout.strip() == "exit 2 False", done.stdout + done.stderr
    assert "kind label has no key 'colour'" in done.stderr


def test_the_job_file_dump_is_untouched_by_a_refused_override(
    tmp_path: Path, with_key: None
) -> None:
    folder = prepared(write_job(tmp_path))
    before = orjson.loads((folder / "job.json").read_bytes())
    code, out = cli("run", str(write_job(tmp_path)), "--set", "max_tokens=-3")
    assert code == 2 and "max_tokens" in out
    assert orjson.loads((folder / "job.json").read_bytes()) == before


def test_sql_and_status_print_values_as_they_are(tmp_path: Path) -> None:
    """Values from the warehouse or the job folder are data, never Rich markup."""
    import duckdb

    duckdb.connect(str(get_settings().warehouse)).close()
    code, out = cli("sql", "select '[bold]x[/bold] ^[a-z0-9]{0,47}$' as v")
    assert code == 0 and "[bold]x[/bold] ^[a-z0-9]{0,47}$" in out
    code, out = cli("status", "[red]nope[/red]")
    assert code == 2 and "no job named '[red]nope[/red]'" in out
