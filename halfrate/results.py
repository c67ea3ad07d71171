"""Parse one batch's raw results (results/<batch_id>.jsonl) into a typed Parquet file.

DuckDB's `read_json` with explicit columns does the parsing (11-18x faster than the SDK's
iterator; see shared/reference/perf-baseline.md section C). Each of the four result types
(succeeded, errored, canceled, expired) becomes one row. A succeeded row's output is checked
(not truncated, not a refusal, and, when the job's kind has an output schema, a JSON object
that passes the schema's checks: halfrate/output_checks.py) and every row gets an `outcome`
that drives retries:

  succeeded       valid output
  invalid_output  succeeded, but the output is not usable (invalid_reason says why)
  truncated       succeeded, cut at max_tokens, kept as it is (a kind that accepts it: generate)
  retriable       expired, canceled, or errored with any type but invalid_request_error
  failed          errored with invalid_request_error: final, error_message is the reason
"""

import os
from pathlib import Path
from typing import Any

import duckdb
import orjson
from pydantic import BaseModel, ConfigDict

from halfrate.config import JobConfig
from halfrate.full_checks import apply_full_checks
from halfrate.kinds import kind_of
from halfrate.output_checks import OutputChecks
from halfrate.sql import load_sql

RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
OUTCOMES = ("succeeded", "invalid_output", "truncated", "retriable", "failed")


class ResultsFormatError(ValueError):
    """A raw results file that is not the API's JSONL; the message names the file and line."""


class ParseSummary(BaseModel):
    """What one results file held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str
    parsed_file: Path
    rows: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    valid_outputs: int
    invalid_outputs: int
    truncated: int
    retriable: int
    failed: int


def parse_results(raw: Path, out: Path, job: JobConfig, batch_id: str) -> ParseSummary:
    """Write `out` (Parquet, one typed row per line of `raw`) atomically and summarize it."""
    if not raw.is_file():
        raise FileNotFoundError(f"{raw}: results file not found; download the batch first")
    kind = kind_of(job)
    checks = kind.output_checks(job)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")  # keep task logs clean
    try:
        try:
            con.execute(
                load_sql("parse/parse_results"),
                {
                    "raw": str(raw),
                    "out": str(tmp),
                    "batch_id": batch_id,
                    "job_name": job.name,
                    "truncated_outcome": kind.truncated_outcome(job),
                    **_check_params(checks),
                },
            )
        except duckdb.Error as exc:
            raise ResultsFormatError(_explain(raw) or f"{raw}: cannot be parsed: {exc}") from None
        if checks is not None and checks.full_schema is not None:
            apply_full_checks(con, tmp, checks.full_schema)
        row = con.execute(load_sql("parse/summarize_parsed"), {"path": str(tmp)}).fetchone()
        assert row is not None
        counts = dict(zip([d[0] for d in con.description or ()], row, strict=True))
        if (
            counts["missing_custom_ids"]
            or counts["unknown_result_types"]
            or counts["distinct_custom_ids"] != counts["rows"]
        ):
            raise ResultsFormatError(_explain(raw) or f"{raw}: inconsistent results file")
        os.replace(tmp, out)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    return ParseSummary(
        batch_id=batch_id,
        parsed_file=out,
        rows=counts["rows"],
        succeeded=counts["succeeded"],
        errored=counts["errored"],
        canceled=counts["canceled"],
        expired=counts["expired"],
        valid_outputs=counts["valid_outputs"],
        invalid_outputs=counts["invalid_outputs"],
        truncated=counts["truncated"],
        retriable=counts["retriable"],
        failed=counts["failed"],
    )


def _check_params(checks: OutputChecks | None) -> dict[str, Any]:
    """The parse SQL's output-check parameters ($json_output, $checks, $paths)."""
    json_output = checks is not None
    return {"json_output": json_output, **(checks or OutputChecks()).params()}


def _explain(raw: Path) -> str | None:
    """Find the first bad line of a results file (slow path, only after DuckDB refused it)."""
    advice = "the raw file is damaged: delete it and download the batch again"
    seen: dict[str, int] = {}
    with raw.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            where = f"{raw}: line {number}"
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                return f"{where}: not valid JSON ({exc}); {advice}"
            if not isinstance(obj, dict):
                return f"{where}: expected a JSON object, got {type(obj).__name__}; {advice}"
            custom_id = obj.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                return f"{where}: missing or empty 'custom_id'; {advice}"
            result = obj.get("result")
            kind = result.get("type") if isinstance(result, dict) else None
            if kind not in RESULT_TYPES:
                return (
                    f"{where}: 'result.type' is {kind!r}, expected one of "
                    f"{', '.join(RESULT_TYPES)}; {advice}"
                )
            if custom_id in seen:
                return (
                    f"{where}: custom_id {custom_id!r} already appeared on line "
                    f"{seen[custom_id]}; {advice}"
                )
            seen[custom_id] = number
    return None
