"""Extract and generate jobs as Prefect flows, against the emulator over loopback with the SDK."""

import base64
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from flows.batch_job import batch_job
from halfrate.ledger import BatchStatus, Ledger
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorOptions, EmulatorServer
from halfrate_emulator.options import FaultConfig
from tests.flows.conftest import SAMPLES, running_emulator
from tests.flows.test_crash_resume import kill, start_run, wait_for
from tests.media import pdf_bytes, png_bytes

pytestmark = pytest.mark.slow

FINAL_STATES = {"succeeded", "invalid_output", "failed", "exhausted", "quarantined", "truncated"}
EMAIL_COLUMNS = {
    "job_name": "VARCHAR",
    "row_id": "VARCHAR",
    "attempt": "UTINYINT",
    "sender_name": "VARCHAR",
    "sender_address": "VARCHAR",
    "subject": "VARCHAR",
    "date": "VARCHAR",
    "list_id": "VARCHAR",
    "is_reply": "BOOLEAN",
    "summary": "VARCHAR",
    "category": "VARCHAR",
}


def warehouse_rows(query: str, **params: object) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(query, params).fetchall()


def sent_custom_ids(server: EmulatorServer) -> list[str]:
    return [cid for create in server.admin.audit(custom_ids=True) for cid in create["custom_ids"]]


def emails_job(tmp_path: Path, files: int | None = None, **keys: Any) -> Path:
    """The emails demo job over a copy of its first `files` e-mails (a key set to None is
    removed from the job)."""
    folder = tmp_path / "emails"
    folder.mkdir()
    for path in sorted((SAMPLES / "emails").glob("*.eml"))[:files]:
        shutil.copy(path, folder)
    job = yaml.safe_load((SAMPLES / "emails.yaml").read_text(encoding="utf-8"))
    job |= {"source": str(folder), **keys}
    job = {key: value for key, value in job.items() if value is not None}
    path = tmp_path / "emails.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
    return path


def test_the_emails_demo_lands_every_record_in_its_typed_table(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    summary = batch_job(job_file=str(emails_job(tmp_path)))

    assert summary.rows == 281 and summary.kind == "extract"
    assert set(summary.final_states) <= FINAL_STATES
    succeeded = summary.final_states["succeeded"]
    assert succeeded >= 270
    columns = warehouse_rows(
        "select column_name, data_type from duckdb_columns() where table_name = 'emails' "
        "order by column_index"
    )
    assert dict(columns) == EMAIL_COLUMNS
    [(rows, distinct)] = warehouse_rows(
        "select count(*), count(distinct row_id) from emails where job_name = 'emails-demo'"
    )
    assert rows == distinct == succeeded
    scored = dict(
        warehouse_rows("select field, rows from extract_accuracy where job_name = 'emails-demo'")
    )
    assert set(scored) == {
        "sender_name",
        "sender_address",
        "subject",
        "date",
        "list_id",
        "is_reply",
    }
    assert set(scored.values()) == {succeeded}
    assert summary.detail("accuracy.date") is not None


def mixed_job(tmp_path: Path, emails: int, **keys: Any) -> Path:
    """The emails job over some e-mails, PDFs, a PNG, and a file of an unknown type."""
    path = emails_job(tmp_path, emails, **keys)
    folder = tmp_path / "emails"
    for number in range(4):
        (folder / f"scan-{number}.pdf").write_bytes(pdf_bytes(pages=number + 1))
    (folder / "photo.png").write_bytes(png_bytes(640, 480))
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    return path


def audit_attempts(server: EmulatorServer) -> dict[str, list[int]]:
    """For each row key, the attempts it was sent in (from the custom_ids the API saw)."""
    sent: dict[str, list[int]] = {}
    for cid in sent_custom_ids(server):
        prefix, _, row = cid.partition("_")
        sent.setdefault(row, []).append(int(prefix[1:]))
    return sent


def test_an_extract_job_with_faults_lands_every_valid_row_in_its_typed_table(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.admin.set_faults(
        FaultConfig(
            seed=3, errored_rate=0.15, expired_rate=0.1, results_cut_after=20, results_cut_count=1
        )
    )
    summary = batch_job(job_file=str(mixed_job(tmp_path, emails=60, max_attempts=4)))

    assert summary.rows == 66 and summary.attempts >= 2  # errored and expired rows went again
    assert summary.final_states["quarantined"] == 1  # sheet.xlsx
    assert set(summary.final_states) <= FINAL_STATES
    assert summary.final_states["succeeded"] >= 60
    ids = sent_custom_ids(emulator)
    assert len(ids) == len(set(ids))  # nothing was sent twice within an attempt
    typed = dict(
        warehouse_rows(
            "select row_id, attempt from emails where job_name = 'emails-demo' order by row_id"
        )
    )
    succeeded = {
        r: a
        for r, a in warehouse_rows(
            "select row_id, attempts from row_outcomes where final_state = 'succeeded'"
        )
    }
    assert typed == succeeded  # every succeeded row, at the attempt that answered it
    assert {"scan-0.pdf", "scan-3.pdf", "photo.png"} <= set(typed)
    [(reason,)] = warehouse_rows(
        "select reason from row_outcomes where final_state = 'quarantined'"
    )
    assert reason.startswith("unsupported file type '.xlsx'")
    sent = [
        json.loads(line)["params"]["messages"][0]["content"]
        for path in (tmp_path / "emulator" / "batches").glob("*/requests.jsonl")
        for line in path.read_text().splitlines()
    ]
    media = {
        base64.b64decode(content[0]["source"]["data"])
        for content in sent
        if content[0]["type"] in ("document", "image")
    }
    folder = tmp_path / "emails"
    assert media == {p.read_bytes() for p in (*folder.glob("*.pdf"), folder / "photo.png")}


def test_invalid_outputs_are_asked_again_and_never_dropped(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    job = yaml.safe_load((SAMPLES / "emails.yaml").read_text(encoding="utf-8"))
    schema = job["schema"]
    schema["properties"]["code"] = {"type": "string", "pattern": "^[A-Z]{3}$"}
    schema["required"].append("code")  # the emulator's strings never match: always invalid
    path = emails_job(tmp_path, 5, schema=schema, max_attempts=3, prime_cache=False)
    summary = batch_job(job_file=str(path))

    assert summary.final_states == {"invalid_output": 5} and summary.attempts == 3
    assert all(attempts == [1, 2, 3] for attempts in audit_attempts(emulator).values())
    reasons = warehouse_rows("select distinct reason from row_outcomes")
    assert reasons == [("code must match pattern ^[A-Z]{3}$",)]
    assert warehouse_rows("select count(*) from emails") == [(0,)]
    [(n,)] = warehouse_rows(
        "select count(*) from results where job_name = 'emails-demo' and text is not null"
    )
    assert n == 15  # every answer is kept in results, with why it was not valid


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    options = EmulatorOptions(processing_seconds=3600, cancel_seconds=0.2)
    with running_emulator(tmp_path, monkeypatch, options) as server:
        yield server


@pytest.mark.parametrize("kind", ["extract", "generate"])
def test_a_crash_during_the_wait_then_a_rerun_does_not_create_again(
    prefect_api: str, slow_emulator: EmulatorServer, tmp_path: Path, kind: str
) -> None:
    keys: dict[str, Any] = {"prime_cache": False}
    if kind == "generate":
        keys |= {"kind": "generate", "schema": None, "gold_columns": None, "max_tokens": 64}
    job = mixed_job(tmp_path, emails=20, **keys)
    log = tmp_path / "run1.log"
    proc = start_run(job, prefect_api, log)
    ledger = get_settings().workdir / "emails-demo" / "ledger.sqlite"

    def submitted() -> bool:
        return ledger.exists() and any(
            r.status is BatchStatus.submitted for r in Ledger(ledger).records()
        )

    wait_for(submitted, "a submitted batch", proc, log)
    time.sleep(1)
    kill(proc)
    slow_emulator.admin.advance_clock(3600)
    summary = batch_job(job_file=str(job))

    assert len(slow_emulator.admin.audit()) == 1  # the one create, never a second
    assert summary.rows == 26 and summary.final_states["quarantined"] == 1
    table = "emails" if kind == "extract" else "generations"
    [(n,)] = warehouse_rows(f"select count(*) from {table} where job_name = 'emails-demo'")
    assert n == 25


def test_a_generate_job_counts_truncated_texts_and_retries_them_only_when_asked(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    source = tmp_path / "questions.csv"
    rows = ["id,question"] + [f"q{i},Question {i}: " + "why " * (i % 3 * 20) for i in range(30)]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    keys = {
        "name": "answers",
        "kind": "generate",
        "source": str(source),
        "prompt": "{question}",
        "instructions": "Answer the question in one paragraph.",
        "max_tokens": 24,
        "prime_cache": False,
        "max_attempts": 2,
    }
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(keys), encoding="utf-8")
    emulator.admin.set_faults(
        FaultConfig(
            seed=5, errored_rate=0.15, expired_rate=0.1, results_cut_after=8, results_cut_count=1
        )
    )
    summary = batch_job(job_file=str(path))

    truncated = summary.final_states.get("truncated", 0)
    assert 0 < truncated < 30 and summary.detail("truncated") == truncated
    assert set(summary.final_states) <= {"succeeded", "truncated", "exhausted"}
    answered = warehouse_rows(
        "select row_id from row_outcomes where final_state in ('succeeded', 'truncated') "
        "except select row_id from generations"
    )
    assert answered == []  # every answered row has its text in generations
    [(stored,)] = warehouse_rows("select count(*) from generations where truncated")
    assert stored == truncated
    cut = dict(warehouse_rows("select row_id, attempt from generations where truncated"))
    sent = audit_attempts(emulator)
    assert all(sent[row][-1] == attempt for row, attempt in cut.items())  # kept, not resent

    emulator.admin.clear_faults()
    path.write_text(yaml.safe_dump(keys | {"retry_truncated": True}), encoding="utf-8")
    again = batch_job(job_file=str(path), restart=True)
    assert again.final_states == {"succeeded": 10, "invalid_output": 20}  # asked again, in vain
    assert again.detail("truncated") == 20  # their last texts are still kept


def test_a_schema_changed_under_the_same_table_is_refused_before_anything_is_sent(
    prefect_api: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    first = batch_job(job_file=str(emails_job(tmp_path, 3, prime_cache=False)))
    assert first.final_states == {"succeeded": 3}
    creates = len(emulator.admin.audit())
    job = yaml.safe_load((SAMPLES / "emails.yaml").read_text(encoding="utf-8"))
    changed = job["schema"]
    changed["properties"]["is_reply"] = {"type": "string", "enum": ["yes", "no"]}
    other = tmp_path / "other"
    other.mkdir()
    path = emails_job(other, 3, name="emails-again", schema=changed)

    with pytest.raises(Exception, match="table 'emails' already exists with other columns"):
        batch_job(job_file=str(path))
    assert len(emulator.admin.audit()) == creates  # nothing was sent
    assert warehouse_rows("select count(*) from emails") == [(3,)]  # nothing was lost

    (tmp_path / "x").mkdir()
    bad = emails_job(tmp_path / "x", 3, name="bad", schema={"type": "object", "properties": {}})
    with pytest.raises(Exception, match="the schema has no properties"):
        batch_job(job_file=str(bad))
    assert len(emulator.admin.audit()) == creates
