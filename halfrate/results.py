"""Parse one batch's raw results (results/<batch_id>.jsonl) into typed rows.

`parse_into` reads the raw JSONL once, into a temporary table of the connection it is given:
the load parses straight into the warehouse's transaction (no intermediate file to encode
and decode again). `stage_outcomes` writes each result's type, retry outcome and usage beside
the raw file for what reads it without the warehouse: the retry plan, a deadline's
remainders and the pilot's measurement. DuckDB's `read_json` with explicit columns does the parsing (11-18x faster than the SDK's
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
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
from pydantic import BaseModel, ConfigDict

from halfrate.config import JobConfig
from halfrate.full_checks import apply_full_checks
from halfrate.kinds import kind_of
from halfrate.output_checks import OutputChecks
from halfrate.sql import load_sql

if TYPE_CHECKING:
    from halfrate.workspace import JobPaths

RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
OUTCOMES = ("succeeded", "invalid_output", "truncated", "retriable", "failed")


class ResultsFormatError(ValueError):
    """A raw results file that is not the API's JSONL; the message names the file and line."""


class ParseSummary(BaseModel):
    """What one results file held."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str
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


def parse_into(
    con: duckdb.DuckDBPyConnection, raw: Path, job: JobConfig, batch_id: str
) -> ParseSummary:
    """Parse `raw` into the temporary table `parsed_results` of `con`, checked; summarize it.

    Raises:
        ResultsFormatError: `raw` is not the API's JSONL (the message names the bad line).
    """
    if not raw.is_file():
        raise FileNotFoundError(f"{raw}: results file not found; download the batch first")
    kind = kind_of(job)
    checks = kind.output_checks(job)
    params = {
        "raw": str(raw),
        "batch_id": batch_id,
        "job_name": job.name,
        "truncated_outcome": kind.truncated_outcome(job),
        **_check_params(checks),
    }
    try:
        con.execute(load_sql("parse/parse_results"), params)
    except duckdb.Error as exc:
        raise ResultsFormatError(_explain(raw) or f"{raw}: cannot be parsed: {exc}") from None
    if checks is not None and checks.full_schema is not None:
        apply_full_checks(con, checks.full_schema)
    row = con.execute(load_sql("parse/summarize_parsed")).fetchone()
    assert row is not None
    counts = dict(zip([d[0] for d in con.description or ()], row, strict=True))
    missing, unknown = counts.pop("missing_custom_ids"), counts.pop("unknown_result_types")
    if missing or unknown or counts.pop("distinct_custom_ids") != counts["rows"]:
        raise ResultsFormatError(_explain(raw) or f"{raw}: inconsistent results file")
    return ParseSummary(batch_id=batch_id, **counts)


def stage_outcomes(raw: Path, out: Path, job: JobConfig, batch_id: str) -> ParseSummary:
    """Write `out`: each result's type, retry outcome and usage (for a batch not loaded yet)."""
    with _scratch() as con:
        summary = parse_into(con, raw, job, batch_id)
        copy_parsed(con, "parse/copy_outcomes", out)
    return summary


def staged_outcomes(paths: "JobPaths", job: JobConfig, batch_id: str) -> Path:
    """The batch's staged outcomes file (each result's type, outcome and usage), parsed from
    its raw results when no load staged it (the warehouse was busy, or an older halfrate
    loaded it)."""
    out = paths.outcomes_file(batch_id)
    if not out.exists():
        stage_outcomes(paths.results_file(batch_id), out, job, batch_id)
    return out


def copy_parsed(con: duckdb.DuckDBPyConnection, sql: str, out: Path) -> None:
    """Write `parsed_results` (or what `sql` selects of it) to `out`, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        con.execute(load_sql(sql), {"out": str(tmp)})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for parsing outside the warehouse."""
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")  # keep task logs clean
    return con


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
