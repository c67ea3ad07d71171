"""Builders for staged job files and API-shaped result lines, shared by the load and SQL tests.

Result lines follow shared/reference/anthropic-batches.md section 2.6 exactly; every line is
checked with the SDK's own MessageBatchIndividualResponse model before it is written.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
from anthropic.types.messages import MessageBatchIndividualResponse

from halfrate.config import JobConfig
from halfrate.kinds.label import LabelJob
from halfrate.ledger import BatchRecord, BatchStatus, Ledger, RequestFile
from halfrate.results import ParseSummary, parse_into
from halfrate.workspace import JobPaths, job_paths

LABELS = ["billing", "card", "other"]


def usage(
    input_tokens: int = 20,
    output_tokens: int = 8,
    *,
    write_5m: int = 0,
    write_1h: int = 0,
    read: int = 0,
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
        "inference_geo": None,
        "output_tokens_details": None,
        "server_tool_use": None,
        "service_tier": "batch",
        "speed": None,
    }


def succeeded(
    custom_id: str,
    text: str | None = '{"label":"billing"}',
    *,
    model: str = "claude-sonnet-5",
    stop_reason: str = "end_turn",
    tokens: dict[str, Any] | None = None,
    tool_input: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text, "citations": None})
    if tool_input is not None:
        content.append(
            {"type": "tool_use", "id": "toolu_01A", "name": "classify", "input": tool_input}
        )
    message = {
        "id": f"msg_01{hashlib.sha1(custom_id.encode()).hexdigest()[:20]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "container": None,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": None,
        "usage": tokens if tokens is not None else usage(),
    }
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


def errored(
    custom_id: str, error_type: str = "overloaded_error", message: str = "Overloaded"
) -> dict[str, Any]:
    error = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": None,
    }
    return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}


def canceled(custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "result": {"type": "canceled"}}


def expired(custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "result": {"type": "expired"}}


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    for line in lines:
        MessageBatchIndividualResponse.model_validate(line)  # the SDK's own type
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def make_job(tmp_path: Path, name: str = "intents", **overrides: Any) -> JobConfig:
    fields: dict[str, Any] = {
        "name": name,
        "source": tmp_path / "source.csv",
        "instructions": "Label the utterance.",
        "labels": LABELS,
        "gold_column": "intent",
        "max_attempts": 2,
    }
    return LabelJob(**(fields | overrides))


@dataclass
class Staged:
    job: JobConfig
    paths: JobPaths
    ledger: Ledger
    valid_rows: int
    quarantined_rows: int


def stage_job(
    tmp_path: Path,
    job: JobConfig,
    rows: list[tuple[str, str | None]],
    quarantine: Sequence[tuple[int, str | None, str]] = (),
) -> Staged:
    """extract/rows.parquet (row_number, row_id, text, gold) and extract/quarantine.parquet."""
    paths = job_paths(tmp_path / "jobs", job.name)
    paths.rows.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(
        {
            "row_number": [i + 1 for i in range(len(rows))],
            "row_id": [r[0] for r in rows],
            "text": [f"text of {r[0]}" for r in rows],
            "gold": [r[1] for r in rows],
        },
        schema={"row_number": pl.UInt32, "row_id": pl.Utf8, "text": pl.Utf8, "gold": pl.Utf8},
    )
    if getattr(job, "gold_column", None) is None:
        frame = frame.drop("gold")
    frame.write_parquet(paths.rows)
    pl.DataFrame(
        {
            "row_number": [q[0] for q in quarantine],
            "row_id": [q[1] for q in quarantine],
            "reason": [q[2] for q in quarantine],
        },
        schema={"row_number": pl.UInt32, "row_id": pl.Utf8, "reason": pl.Utf8},
    ).write_parquet(paths.quarantine)
    return Staged(job, paths, Ledger.create(paths.ledger), len(rows), len(quarantine))


def custom_id(attempt: int, row_id: str) -> str:
    return f"a{attempt}_{row_id}"


def stage_batch(
    staged: Staged,
    batch_id: str,
    row_ids: list[str],
    results: list[dict[str, Any]],
    *,
    attempt: int = 1,
    part: int = 1,
    purpose: str = "main",
    created_at: str = "2026-11-02T10:00:00.000000Z",
) -> BatchRecord:
    """A request file with its index, a ledger record (downloaded) and the raw results."""
    paths = staged.paths
    name = "prime" if purpose == "prime" else f"part-{part:04d}"
    request_file = paths.requests_dir(attempt) / f"{name}.jsonl"
    request_file.parent.mkdir(parents=True, exist_ok=True)
    ids = [custom_id(attempt, r) for r in row_ids]
    body = b"".join(
        orjson.dumps({"custom_id": c, "params": {"model": staged.job.model}}) + b"\n" for c in ids
    )
    request_file.write_bytes(body)
    pl.DataFrame(
        {"custom_id": ids, "row_id": row_ids, "attempt": [attempt] * len(ids)},
        schema={"custom_id": pl.Utf8, "row_id": pl.Utf8, "attempt": pl.UInt8},
    ).write_parquet(paths.index_file(paths.relative(request_file)))
    relative = paths.relative(request_file)
    staged.ledger.add_request_files(
        [
            RequestFile(
                path=relative,
                attempt=attempt,
                part=part,
                purpose=purpose,
                n_requests=len(ids),
                body_bytes=13 + len(body) - 1 + 2,
                sha256=hashlib.sha256(body).hexdigest(),
            )
        ]
    )
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for line in results:
        counts[line["result"]["type"]] += 1
    staged.ledger.record_intent(relative)
    staged.ledger.record_batch(
        relative,
        {
            "id": batch_id,
            "created_at": created_at,
            "expires_at": created_at.replace("T10", "T23"),
            "processing_status": "ended",
            "request_counts": counts,
        },
    )
    staged.ledger.update_progress(
        {
            "id": batch_id,
            "processing_status": "ended",
            "request_counts": counts,
            "ended_at": created_at.replace("T10", "T11"),
        }
    )
    staged.ledger.set_status(batch_id, BatchStatus.downloaded)
    write_jsonl(paths.results_file(batch_id), results)
    return staged.ledger.record(relative)


def parse_results(raw: Path, out: Path, job: JobConfig, batch_id: str) -> ParseSummary:
    """What the load parses from `raw` (halfrate.results.parse_into), written to the Parquet
    file `out` so a test can read every typed column."""
    with duckdb.connect() as con:
        summary = parse_into(con, raw, job, batch_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        con.execute("copy parsed_results to $out (format parquet)", {"out": str(out)})
    return summary
