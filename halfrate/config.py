"""A job, as one pydantic model: read from a YAML job file, overridable field by field."""

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

JOB_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class JobKind(StrEnum):
    """What the job asks of Claude. Only `label` is implemented so far."""

    label = "label"
    extract = "extract"
    generate = "generate"
    judge = "judge"


IMPLEMENTED_KINDS = frozenset({JobKind.label})


class CacheTTL(StrEnum):
    """Prompt-cache lifetime for the shared instructions (`none` disables caching)."""

    none = "none"
    five_minutes = "5m"
    one_hour = "1h"


class JobConfig(BaseModel):
    """Everything that defines one bulk job. Its `name` identifies it: rerunning resumes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=JOB_NAME_PATTERN, description="Job id: lowercase, digits, _ and -.")
    kind: JobKind = Field(JobKind.label, description="label | extract | generate | judge")
    source: Path = Field(description="A .csv, .parquet, .jsonl/.ndjson file, or a folder of texts.")
    id_column: str = Field("id", min_length=1, description="Column with a unique, stable row id.")
    text_column: str = Field("text", min_length=1, description="Column with the text to process.")
    gold_column: str | None = Field(None, description="Optional column with the expected label.")
    model: str = Field("claude-sonnet-5", min_length=1, description="Claude model id.")
    max_tokens: int = Field(256, ge=1, le=128_000, description="Output cap per request.")
    instructions: str = Field(min_length=1, description="Shared prefix, cached across requests.")
    labels: list[str] | None = Field(None, description="Allowed labels (kind: label).")
    cache_ttl: CacheTTL = Field(CacheTTL.one_hour, description="none | 5m | 1h")
    prime_cache: bool = Field(
        True, description="Send a 1-request batch first so the main batches read a warm cache."
    )
    max_attempts: int = Field(3, ge=1, le=10, description="Tries per row for retriable failures.")
    max_cost_usd: float | None = Field(
        None, gt=0, description="Budget: refuse to submit if the expected batch cost is higher."
    )

    @model_validator(mode="after")
    def _check_kind(self) -> Self:
        if self.kind not in IMPLEMENTED_KINDS:
            raise ValueError(f"kind {self.kind.value!r} is not implemented yet; use 'label'")
        if self.kind is JobKind.label:
            labels = self.labels or []
            if len(labels) < 2:
                raise ValueError("labels: a label job needs at least two labels")
            if len(set(labels)) != len(labels) or any(not x.strip() for x in labels):
                raise ValueError("labels: labels must be unique, non-empty strings")
        return self

    def fingerprint(self) -> str:
        """A hash of what changes the requests; `name` and `max_attempts` do not."""
        data = self.model_dump(
            mode="json", exclude={"name", "max_attempts", "prime_cache", "max_cost_usd"}
        )
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class JobSpec(BaseModel):
    """Field-by-field overrides of a job file (every field optional); the Prefect UI form."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    kind: JobKind | None = None
    source: str | None = None
    id_column: str | None = None
    text_column: str | None = None
    gold_column: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    instructions: str | None = None
    labels: list[str] | None = None
    cache_ttl: CacheTTL | None = None
    prime_cache: bool | None = None
    max_attempts: int | None = None
    max_cost_usd: float | None = None


class JobConfigError(ValueError):
    """A job file or override that cannot become a JobConfig; the message says what to fix."""


def read_job_file(path: Path) -> dict[str, Any]:
    """Read a YAML job file into a dict; relative `source` paths resolve against the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobConfigError(f"{path}: job file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise JobConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise JobConfigError(f"{path}: expected a mapping of job keys, got {type(data).__name__}")
    if isinstance(data.get("source"), str) and not Path(data["source"]).is_absolute():
        candidate = path.parent / data["source"]
        if candidate.exists() or not Path(data["source"]).exists():
            data["source"] = str(candidate)
    return data


def resolve_job(job_file: Path | None = None, spec: JobSpec | None = None) -> JobConfig:
    """Merge a job file with overrides and validate, naming the file and key on error."""
    data: dict[str, Any] = read_job_file(job_file) if job_file else {}
    if spec is not None:
        data |= spec.model_dump(exclude_none=True)
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        raise JobConfigError(_describe(exc, job_file)) from None


def _describe(exc: ValidationError, job_file: Path | None) -> str:
    where = f"{job_file}" if job_file else "job parameters"
    lines = [f"{where}: invalid job configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(job)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = ", ".join(JobConfig.model_fields)
            msg = f"unknown key; known keys are: {known}"
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)
