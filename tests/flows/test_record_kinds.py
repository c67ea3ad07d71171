"""Extract and generate jobs as Prefect flows, against the emulator over loopback with the SDK."""

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from flows.batch_job import batch_job
from halfrate.settings import get_settings
from halfrate_emulator import EmulatorServer
from tests.flows.conftest import SAMPLES

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
    """The emails demo job over a copy of its first `files` e-mails."""
    folder = tmp_path / "emails"
    folder.mkdir()
    for path in sorted((SAMPLES / "emails").glob("*.eml"))[:files]:
        shutil.copy(path, folder)
    job = yaml.safe_load((SAMPLES / "emails.yaml").read_text(encoding="utf-8"))
    job |= {"source": str(folder), **keys}
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
