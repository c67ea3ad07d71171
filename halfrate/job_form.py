"""The job's keys as a form: the JSON Schema of `JobSpec`, the overrides a run's `job` holds.

Prefect stores this schema as the deployment's parameter schema: its UI draws the run form from
it and its server checks a run's parameters against it before the run is created. Prefect
3.9's form draws `anyOf [T, null]` as one tab per branch (the null tab reads 'Property is type
"None"') and fills an empty field with its schema `default` (which would then override the
job file's value), so every property here is the key's plain type with its limits and no
default, and its description says the default and the limits in words. Prefect's check treats
a property without a default as nullable: an empty field (or null) keeps the file's value.

Everything is generated from the kinds' job models (halfrate/kinds/): a key added to a kind
appears in the form with its description, default and limits.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from halfrate.kinds import DEFAULT_KIND, KINDS
from halfrate.kinds.base import JobBase


@dataclass(frozen=True)
class JobKey:
    """One key of a job file, as the kinds define it."""

    name: str
    annotation: Any
    """Its type (for `kind`: one of the kinds)."""
    info: FieldInfo
    """Its definition (JobBase's for a key every kind has, else the first kind's)."""
    kinds: tuple[str, ...]
    """The kinds that have it (all of them for JobBase's keys)."""
    defaults: dict[str, Any]
    """Its default in each kind that has one."""

    @property
    def shared(self) -> bool:
        return self.name in JobBase.model_fields

    @property
    def description(self) -> str:
        """The definition's description, prefixed with its kinds when not every kind has it."""
        text = _sentence(self.info.description or "")
        if self.shared:
            return text
        owners = ", ".join(self.kinds)
        return f"(kind{'s' if len(self.kinds) > 1 else ''} {owners}) {text}"

    @property
    def help(self) -> str:
        """Its description and its default (`Default: 256 (kind judge: 1024).`)."""
        return " ".join(p for p in (self.description, _default_text(self)) if p)


def job_keys() -> dict[str, JobKey]:
    """Every key of every kind: JobBase's first, then the kinds' own, in definition order."""
    names = list(JobBase.model_fields)
    for kind in KINDS.values():
        names += [n for n in kind.config.model_fields if n not in names]
    keys = {name: _key(name) for name in names}
    info = FieldInfo.merge_field_infos(JobBase.model_fields["kind"], default=DEFAULT_KIND)
    keys["kind"] = JobKey("kind", Literal[tuple(KINDS)], info, tuple(KINDS), {})
    return keys


def _key(name: str) -> JobKey:
    kinds = [k for k in KINDS.values() if name in k.config.model_fields]
    info = JobBase.model_fields.get(name) or kinds[0].config.model_fields[name]
    defaults = {
        k.name: k.config.model_fields[name].default
        for k in kinds
        if k.config.model_fields[name].default is not PydanticUndefined
    }
    return JobKey(name, info.annotation, info, tuple(k.name for k in kinds), defaults)


def form_schema(keys: dict[str, JobKey], title: str, description: str) -> dict[str, Any]:
    """The overrides' JSON Schema: an object of optional keys, no others."""
    properties = {
        name: form_property(key, position) for position, (name, key) in enumerate(keys.items())
    }
    return {
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def form_property(key: JobKey, position: int) -> dict[str, Any]:
    """One key: its plain type and limits, its name as the title, what it is in words."""
    schema = plain_schema(key.annotation, key.info)
    if schema.get("type") == "boolean":
        schema["enum"] = [True, False]  # a select whose empty state keeps the file's value
    text = " ".join(p for p in (key.help, _limits_text(schema)) if p)
    return schema | {"title": key.name, "description": text, "position": position}


def plain_schema(annotation: Any, info: FieldInfo) -> dict[str, Any]:
    """The JSON Schema of a field's values: no null branch, no default, no $ref."""
    annotated: Any = Annotated[annotation, *info.metadata] if info.metadata else annotation
    generated = TypeAdapter(annotated).json_schema()
    schema: dict[str, Any] = _inline(generated, generated.get("$defs", {}))
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema |= branches[0]
    elif branches:
        schema["anyOf"] = branches
    if isinstance(info.json_schema_extra, dict):
        schema |= info.json_schema_extra
    for word in ("title", "description", "default", "$defs"):
        schema.pop(word, None)
    return schema


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every `$ref` to `defs` replaced by its definition."""
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inline(target | rest, defs)
    return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}


def _default_text(key: JobKey) -> str:
    """`Default: 256 (kind judge: 1024).`: the defaults that are values, per kind if they differ."""
    shown = {kind: _value(v) for kind, v in key.defaults.items() if v is not None}
    base = key.info.default
    if key.shared and base not in (None, PydanticUndefined):
        others = [f"kind {k}: {v}" for k, v in shown.items() if v != _value(base)]
        return f"Default: {_value(base)}" + (f" ({'; '.join(others)})." if others else ".")
    if len(set(shown.values())) == 1 and len(shown) == len(key.kinds):
        return f"Default: {next(iter(shown.values()))}."
    return " ".join(f"Default in kind {k}: {v}." for k, v in shown.items())


def _value(value: Any) -> str:
    """A default as a job file spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "empty"
    return str(getattr(value, "value", value))


def _limits_text(schema: dict[str, Any]) -> str:
    """The schema's limits in words: `Limits: from 1 to 128,000.`"""
    words = _number_limits(schema) + _text_limits(schema) + _collection_limits(schema)
    return f"Limits: {', '.join(words)}." if words else ""


def _number_limits(schema: dict[str, Any]) -> list[str]:
    low, high = schema.get("minimum"), schema.get("maximum")
    words = []
    if low is not None and high is not None:
        words.append(f"from {low:,} to {high:,}")
    elif low is not None:
        words.append(f"at least {low:,}")
    elif high is not None:
        words.append(f"at most {high:,}")
    if "exclusiveMinimum" in schema:
        words.append(f"above {schema['exclusiveMinimum']:,}")
    return words


def _text_limits(schema: dict[str, Any]) -> list[str]:
    words = []
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if shortest and shortest > 1:  # 1: an empty field is no override, not an empty value
        words.append(f"at least {shortest} characters")
    if longest:
        words.append(f"at most {longest} characters")
    if "pattern" in schema:
        words.append(f"matching {schema['pattern']}")
    return words


def _collection_limits(schema: dict[str, Any]) -> list[str]:
    words = []
    fewest, most = schema.get("minItems"), schema.get("maxItems")
    if fewest is not None and fewest == most:
        words.append(f"exactly {fewest} items")
    elif fewest:
        words.append(f"at least {fewest} items")
    if schema.get("uniqueItems"):
        words.append("no repeats")
    fewest = schema.get("minProperties")
    if fewest:
        words.append("at least one entry" if fewest == 1 else f"at least {fewest} entries")
    if schema.get("maxProperties"):
        words.append(f"at most {schema['maxProperties']} entries")
    names = schema.get("propertyNames", {}).get("pattern")
    if names:
        words.append(f"names matching {names}")
    return words


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text.endswith((".", "!", "?")) else f"{text}."
