"""A job, as one pydantic model per kind: read from a YAML job file, overridable field by field.

`JobConfig` is the union of the kinds' job models (halfrate/kinds/), told apart by `kind`.
`JobSpec` is the flows' `job` parameter, overrides of a job file: every key of every kind,
optional, generated from the same field definitions (descriptions, limits), never copied by
hand; its JSON Schema is the form halfrate/job_form.py makes of them.
"""

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    create_model,
    model_serializer,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from halfrate.errors import ActionableError
from halfrate.job_form import form_schema, job_keys
from halfrate.kinds import DEFAULT_KIND, KINDS, JobConfig, UnknownKindError, kind_named
from halfrate.kinds.base import JOB_NAME_PATTERN, JOB_SOURCE_PREFIX, CacheTTL, JobBase

__all__ = [
    "JOB_NAME_PATTERN",
    "NO_OVERRIDES",
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

_ADAPTER: TypeAdapter[JobConfig] = TypeAdapter(JobConfig)


class JobConfigError(ValueError, ActionableError):
    """A job file or override that cannot become a JobConfig; the message says what to fix."""

    @property
    def problems(self) -> list[str]:
        """Its lines after the first, one per problem (`key: what is wrong`)."""
        return [line.removeprefix("  - ") for line in str(self).splitlines()[1:]]


class JobOverrides(BaseModel):
    """Key-by-key overrides of a job file (every key optional); JobSpec fills in the keys.

    Unset keys are left out of its dumps (a flow run's parameters show what was overridden),
    and its JSON Schema is the form halfrate/job_form.py generates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _set_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return form_schema(job_keys(), cls.__name__, cls.__doc__ or "")


def _override_fields() -> dict[str, Any]:
    """Every kind's keys, optional (None: keep the job file's value), with their limits."""
    return {
        name: (
            key.annotation | None,
            FieldInfo.merge_field_infos(key.info, default=None, description=key.help),
        )
        for name, key in job_keys().items()
    }


with warnings.catch_warnings():  # record kinds' `schema` key shadows BaseModel.schema()
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)
    JobSpec: type[JobOverrides] = create_model(
        "JobSpec",
        __base__=JobOverrides,
        __doc__="Overrides of the job file's keys: an empty field keeps the file's value.",
        **_override_fields(),
    )

NO_OVERRIDES = JobSpec()
"""The flows' default `job`: the job file as it is."""


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


def resolve_job(
    job_file: Path | None = None,
    spec: JobOverrides | None = None,
    *,
    overrides: str = "job parameter",  # what the overrides are called
    override_key: str = "job.{key}",
) -> JobConfig:
    """Merge a job file with overrides and validate. An error names each key where its value
    came from: an overridden one as `override_key` says (`job.max_tokens`, the flow parameter;
    the CLI's `--set max_tokens`), the others after the file."""
    data: dict[str, Any] = read_job_file(job_file) if job_file else {}
    overridden = spec.model_dump(exclude_none=True) if spec is not None else {}
    names = {key: override_key.format(key=key) for key in overridden}
    where = f"{job_file}" if job_file else "job parameters"
    if job_file and names:
        where += f" and the {overrides}"
    try:
        return parse_job(data | overridden, where, names)
    except JobConfigError as exc:
        if names and all(line.startswith(tuple(names.values())) for line in exc.problems):
            raise JobConfigError(_message(f"{overrides}: invalid value", exc.problems)) from None
        raise


def parse_job(
    data: dict[str, Any], where: str = "job", names: Mapping[str, str] | None = None
) -> JobConfig:
    """Validate a job's keys as the model of its `kind`; errors name `where` and each key
    (as `names` says: the key by default)."""
    data = {"kind": DEFAULT_KIND} | data
    names = names or {}
    try:
        kind_named(data["kind"])
        return _ADAPTER.validate_python(data)
    except UnknownKindError as exc:
        problems = [f"{names.get('kind', 'kind')}: {exc}"]
        raise JobConfigError(_message(f"{where}: invalid job configuration", problems)) from None
    except ValidationError as exc:
        problems = _problems(exc, str(data["kind"]), names)
        raise JobConfigError(_message(f"{where}: invalid job configuration", problems)) from None


def _message(header: str, problems: list[str]) -> str:
    return "\n".join([header, *(f"  - {p}" for p in problems)])


def _problems(exc: ValidationError, kind: str, names: Mapping[str, str]) -> list[str]:
    """One line per error: `key: what is wrong`."""
    problems = []
    model = KINDS[kind].config
    for err in exc.errors():
        loc = list(err["loc"])
        if loc and loc[0] == kind:  # the union's tag
            loc = loc[1:]
        msg = err["msg"].removeprefix("Value error, ")
        named, sep, rest = msg.partition(": ")
        if not loc and sep and named in model.model_fields:  # a model check about one key
            loc, msg = [named], rest
        key = ".".join(str(p) for p in loc) or "(job)"
        if err["type"] == "extra_forbidden":
            msg = f"kind {kind} has no key {key!r}{_owner(key)}; its keys are: " + ", ".join(
                model.model_fields
            )
        if loc and str(loc[0]) in names:
            key = names[str(loc[0])] + key.removeprefix(str(loc[0]))
        problems.append(f"{key}: {msg}")
    return problems


def _owner(key: str) -> str:
    """A hint when the key belongs to another kind."""
    owners = [k.name for k in KINDS.values() if key in k.config.model_fields]
    return f" (it is a key of kind {', '.join(owners)})" if owners else ""
