"""A job, as one pydantic model per kind: read from a YAML job file, overridable field by field.

`JobConfig` is the union of the kinds' job models (halfrate/kinds/), told apart by `kind`.
`JobSpec` is the flow's form of overrides: every field of every kind, optional, generated from
the same field definitions (descriptions, limits), never copied by hand.
"""

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from halfrate.errors import ActionableError
from halfrate.kinds import KINDS, JobConfig, UnknownKindError, kind_named
from halfrate.kinds.base import JOB_NAME_PATTERN, JOB_SOURCE_PREFIX, CacheTTL, JobBase

__all__ = [
    "JOB_NAME_PATTERN",
    "CacheTTL",
    "JobBase",
    "JobConfig",
    "JobConfigError",
    "JobOverrides",
    "JobSpec",
    "parse_job",
    "read_job_file",
    "resolve_job",
]

DEFAULT_KIND = "label"  # job files written before `kind` existed are label jobs
_ADAPTER: TypeAdapter[JobConfig] = TypeAdapter(JobConfig)


class JobConfigError(ValueError, ActionableError):
    """A job file or override that cannot become a JobConfig; the message says what to fix."""


class JobOverrides(BaseModel):
    """Field-by-field overrides of a job file (every field optional); JobSpec fills it in."""

    model_config = ConfigDict(extra="forbid")


def _override_fields() -> dict[str, Any]:
    """Every kind's fields, optional (None: keep the job file's value), with their limits."""
    fields: dict[str, Any] = {}
    for name, info in JobBase.model_fields.items():
        fields[name] = _optional(info, "")
    fields["kind"] = (
        Literal[tuple(KINDS)] | None,
        FieldInfo.merge_field_infos(
            JobBase.model_fields["kind"],
            default=None,
            description=f"What the job asks of Claude: {' | '.join(KINDS)}. Default: label.",
        ),
    )
    for kind in KINDS.values():
        for name, info in kind.config.model_fields.items():
            if name not in JobBase.model_fields and name not in fields:
                fields[name] = _optional(info, f"(kind {kind.name}) ")
    return fields


def _optional(info: FieldInfo, prefix: str) -> tuple[Any, FieldInfo]:
    default = "" if info.default in (None, PydanticUndefined) else f" Default: {info.default}."
    description = f"{prefix}{info.description or ''}{default}".strip()
    annotation: Any = info.annotation
    return annotation | None, FieldInfo.merge_field_infos(
        info, default=None, description=description
    )


with warnings.catch_warnings():  # record kinds' `schema` key shadows BaseModel.schema()
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)
    JobSpec: type[JobOverrides] = create_model(
        "JobSpec",
        __base__=JobOverrides,
        __doc__="Field-by-field overrides of a job file (every field optional); the Prefect UI "
        "form.",
        **_override_fields(),
    )


def read_job_file(path: Path) -> dict[str, Any]:
    """Read a YAML job file into a dict; relative `source` paths resolve against the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobConfigError(f"{path}: job file not found; check the path") from None
    except UnicodeDecodeError as exc:
        raise JobConfigError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise JobConfigError(f"{path}: not valid YAML{_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        got = "nothing (the file is empty)" if data is None else f"a {type(data).__name__}"
        raise JobConfigError(
            f"{path}: a job file is a mapping of keys (name: ..., source: ..., "
            f"instructions: ...), got {got}; see data/samples/intents.yaml"
        )
    source = data.get("source")
    if isinstance(source, str) and source.startswith(JOB_SOURCE_PREFIX):
        return data  # another job's outputs, not a path
    if isinstance(source, str) and not Path(source).is_absolute():
        candidate = path.parent / data["source"]
        if candidate.exists() or not Path(data["source"]).exists():
            data["source"] = str(candidate)
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """` at line 3, column 7: <problem> (<context> at line 2, column 9)` and the line, marked."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f": {exc}"
    mark = exc.problem_mark
    text = f" at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        where = exc.context_mark
        text += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
    snippet = mark.get_snippet()
    return text + (f"\n{snippet}" if snippet else "")


def resolve_job(job_file: Path | None = None, spec: JobOverrides | None = None) -> JobConfig:
    """Merge a job file with overrides and validate, naming the file and key on error."""
    data: dict[str, Any] = read_job_file(job_file) if job_file else {}
    if spec is not None:
        data |= spec.model_dump(exclude_none=True)
    return parse_job(data, f"{job_file}" if job_file else "job parameters")


def parse_job(data: dict[str, Any], where: str = "job") -> JobConfig:
    """Validate a job's keys as the model of its `kind`; errors name `where` and each key."""
    data = {"kind": DEFAULT_KIND} | data
    try:
        kind_named(data["kind"])
        return _ADAPTER.validate_python(data)
    except UnknownKindError as exc:
        raise JobConfigError(f"{where}: invalid job configuration\n  - kind: {exc}") from None
    except ValidationError as exc:
        raise JobConfigError(_describe(exc, where, str(data["kind"]))) from None


def _describe(exc: ValidationError, where: str, kind: str) -> str:
    lines = [f"{where}: invalid job configuration"]
    model = KINDS[kind].config
    for err in exc.errors():
        loc = list(err["loc"])
        if loc and loc[0] == kind:  # the union's tag
            loc = loc[1:]
        key = ".".join(str(p) for p in loc) or "(job)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"kind {kind} has no key {key!r}{_owner(key)}; its keys are: " + ", ".join(
                model.model_fields
            )
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


def _owner(key: str) -> str:
    """A hint when the key belongs to another kind."""
    owners = [k.name for k in KINDS.values() if key in k.config.model_fields]
    return f" (it is a key of kind {', '.join(owners)})" if owners else ""
