"""The face of a job kind: the config fields every kind shares, and the Kind base class.

A kind (label, extract, generate, judge) is one module in this package providing a `JobBase`
subclass (its config fields, `kind: Literal[...]`) and a `Kind` subclass (its requests, output
schema, warehouse tables and views, and what its summary adds). Everything else (extract,
build, submit, wait, download, parse, load, retries, costs, CLI) is generic. docs/kinds.md
says how to add one.
"""

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from halfrate.deadline import normalize_deadline, parse_deadline
from halfrate.output_checks import OutputChecks, compile_checks
from halfrate.sql import load_sql
from halfrate.template import PromptTemplate

if TYPE_CHECKING:  # importing anthropic costs seconds, Polars a third of one
    import duckdb
    import polars as pl
    from anthropic.types import TextBlockParam
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

JOB_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
JOB_SOURCE_PREFIX = "job:"
"""`source: job:<name>` reads another job's outputs (halfrate/chain.py)."""
MAX_PILOT_ROWS = 10_000
UPSTREAM_ID_COLUMN = "row_id"
"""A job source's row id column (the upstream job's row ids): id_column's default there."""


DISTINCT_CHOICES: dict[str, Any] = {
    "minItems": 2,
    "uniqueItems": True,
    "items": {"type": "string", "minLength": 1},
}
"""JSON Schema of a list of choices (labels, verdicts): what the kinds' model checks say, for
forms and Prefect's parameter check (the models' own checks give the messages)."""


class CacheTTL(StrEnum):
    """Prompt-cache lifetime for the shared instructions (`none` disables caching)."""

    none = "none"
    five_minutes = "5m"
    one_hour = "1h"


class SendMode(StrEnum):
    """How a job's requests go out: as batches (half price), or real time (full price, now)."""

    batch = "batch"
    realtime = "realtime"


class JobBase(BaseModel):
    """The fields every kind of job has. Its `name` identifies it: rerunning resumes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=JOB_NAME_PATTERN, description="Job id: lowercase, digits, _ and -.")
    kind: str = Field(description="What the job asks of Claude (docs/kinds.md).")
    source: Path = Field(
        description="A .csv, .parquet, .jsonl/.ndjson file, a folder of texts, or job:<name> "
        "(another job's outputs joined to its source rows)."
    )
    id_column: str = Field("id", min_length=1, description="Column with a unique, stable row id.")
    text_column: str = Field(
        "text", min_length=1, description="Column with the text to send (shorthand for prompt)."
    )
    prompt: str | None = Field(
        None,
        min_length=1,
        description="Template over the source's columns, e.g. 'Title: {title}\\n\\n{body}' "
        "({{ and }} are literal braces); replaces text_column.",
    )
    model: str = Field("claude-sonnet-5", min_length=1, description="Claude model id.")
    max_tokens: int = Field(256, ge=1, le=128_000, description="Output cap per request.")
    instructions: str = Field(min_length=1, description="Shared prefix, cached across requests.")
    cache_ttl: CacheTTL = Field(
        CacheTTL.one_hour,
        description="How long the cached instructions live: 5m, 1h, or none (no prompt caching).",
    )
    prime_cache: bool = Field(
        True, description="Send a 1-request batch first so the main batches read a warm cache."
    )
    max_attempts: int = Field(3, ge=1, le=10, description="Tries per row for retriable failures.")
    max_cost_usd: float | None = Field(
        None, gt=0, description="Budget: refuse to submit if the expected batch cost is higher."
    )
    pilot_rows: int | None = Field(
        None,
        ge=1,
        le=MAX_PILOT_ROWS,
        description="Run a pilot first: this many rows, sampled across the source, as a batch "
        "of their own; the full job's cost is projected from what they really cost (and "
        "max_cost_usd is checked against that projection) before the other rows are sent. "
        "The pilot's rows are part of the job: never sent twice.",
    )
    mode: SendMode = Field(
        SendMode.batch,
        description="batch (half price, done within 24 h) | realtime (the Messages API at full "
        "price, for small or urgent jobs: no batch at all).",
    )
    deadline: str | None = Field(
        None,
        description="When the rows must be done: an ISO time with its offset "
        "(2026-12-01T07:00:00+01:00) or a duration from the job's first submission (6h, 90m). "
        "Batches not ended by then are canceled and their rows finished in real time.",
    )

    # Settings that do not change the requests, and fields added after jobs already existed
    # (left out while unset, so those jobs keep their fingerprint and resume).
    _NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset(
        {"name", "max_attempts", "prime_cache", "max_cost_usd", "pilot_rows", "mode", "deadline"}
    )
    _FINGERPRINTED_ONLY_WHEN_SET: ClassVar[frozenset[str]] = frozenset({"prompt"})

    @model_validator(mode="before")
    @classmethod
    def _job_source_ids(cls, data: Any) -> Any:
        """A job source's rows are the upstream's: id_column defaults to their row_id."""
        chained = isinstance(data, dict) and str(data.get("source", "")).startswith(
            JOB_SOURCE_PREFIX
        )
        if chained and "id_column" not in data:
            return {**data, "id_column": UPSTREAM_ID_COLUMN}
        return data

    @field_validator("deadline", mode="before")
    @classmethod
    def _check_deadline(cls, value: Any) -> Any:
        value = normalize_deadline(value)
        if isinstance(value, str):
            parse_deadline(value)  # raises DeadlineError (a ValueError) with the fix
        return value

    @field_validator("source")
    @classmethod
    def _check_job_source(cls, value: Path) -> Path:
        name = str(value).removeprefix(JOB_SOURCE_PREFIX)
        if str(value).startswith(JOB_SOURCE_PREFIX) and not re.fullmatch(JOB_NAME_PATTERN, name):
            raise ValueError(
                f"{value}: job:<name> must name a job (lowercase letters, digits, _ and -), "
                "e.g. job:trivia-answers"
            )
        return value

    @property
    def upstream(self) -> str | None:
        """The job whose outputs are this job's source (`source: job:<name>`), or None."""
        text = str(self.source)
        return text.removeprefix(JOB_SOURCE_PREFIX) if text.startswith(JOB_SOURCE_PREFIX) else None

    @field_validator("prompt")
    @classmethod
    def _parse_prompt(cls, value: str | None) -> str | None:
        if value is not None:
            PromptTemplate.parse(value)  # raises TemplateError (a ValueError) with the fix
        return value

    @model_validator(mode="after")
    def _one_way_to_say_the_text(self) -> Self:
        # The default text_column is harmless beside a prompt: a job's own dump holds both.
        default = type(self).model_fields["text_column"].default
        if self.prompt is not None and self.text_column != default:
            raise ValueError(
                f"give either prompt or text_column, not both (text_column: "
                f"{self.text_column} is the shorthand for prompt: '{{{self.text_column}}}')"
            )
        return self

    @property
    def template(self) -> PromptTemplate:
        """What each row sends: the prompt template, or the text_column shorthand."""
        if self.prompt is not None:
            return PromptTemplate.parse(self.prompt)
        return PromptTemplate.column(self.text_column)

    def fingerprint(self) -> str:
        """A hash of what changes the requests; `name` and `max_attempts` do not."""
        data = self.model_dump(mode="json", exclude=set(self._NOT_FINGERPRINTED))
        for key in self._FINGERPRINTED_ONLY_WHEN_SET:
            if data.get(key) is None:
                data.pop(key, None)
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class SummaryDetail(BaseModel):
    """One figure a kind adds to the job summary (e.g. label's accuracy against gold)."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Machine name: the key in JobSummary.details."""
    title: str
    """What the summary shows before it, e.g. "Accuracy vs gold"."""
    value: float | int | str | None
    text: str
    """The value as people read it, e.g. "71.0% of 693 rows"."""
    shown: bool = True
    """False for figures only machines read (they are still in JobSummary.details)."""


@dataclass(frozen=True)
class UserContent:
    """How a row becomes the user message: a Polars expression over the source's columns."""

    expr: "pl.Expr"
    column: Literal["text", "content"] = "text"
    """`text`: the expression is the message text. `content`: it is the JSON of the message's
    content (a list of content blocks, e.g. a base64 `document` block and a `text` block);
    extract stores it as rows.parquet's `content` column and build splices it in as it is."""


class Kind:
    """A job kind. Subclasses set the class attributes and override what differs.

    The defaults describe a kind that sends the rendered prompt as the user message after the
    cached instructions, expects the output `output_schema` describes (validated in the parse
    step) and lands in the generic `outcomes` table only.
    """

    name: ClassVar[str]
    """The `kind:` value in job files."""
    config: ClassVar[type[JobBase]]
    """Its job model: JobBase plus the kind's fields, with `kind: Literal[name]`."""
    tables: ClassVar[tuple[str, ...]] = ()
    """DDL files (sql/kinds/<kind>/...) ensure_schema runs for every warehouse."""
    views: ClassVar[tuple[str, ...]] = ()
    """View files (sql/kinds/<kind>/...) ensure_schema (re)creates after the generic marts."""
    batch_loads: ClassVar[tuple[str, ...]] = ()
    """SQL run, in order, in each batch's load transaction after `outcomes` is refreshed
    (parameters $job_name, $batch_id)."""
    stale_deletes: ClassVar[tuple[str, ...]] = ()
    """SQL that drops a job's rows of batches its ledger no longer knows (the job was
    restarted), run in load_job's transaction (parameters $job_name, $batch_ids)."""
    outputs: ClassVar[str] = "kinds/outputs"
    """A COPY of the job's outputs to Parquet ($job_name, $out): `row_id` and the kind's
    output columns, one row per succeeded source row. `halfrate export` joins them to the
    source's columns; a job source (`source: job:<name>`) reads them."""
    one_output_per_row: ClassVar[bool] = True
    """False when `outputs` has several rows per source row (judge: one per criterion): such
    a job cannot be another job's source."""

    def source_columns(self, job: JobBase) -> dict[str, str]:
        """Extra source columns extract carries into rows.parquet: our name -> source column."""
        return {}

    def user_content(self, job: JobBase, template: PromptTemplate) -> UserContent:
        """What each row sends: by default the job's prompt template, rendered."""
        return UserContent(template.render())

    def request_keys(self, job: JobBase) -> tuple[str, ...]:
        """The requests each row sends, by key (`""`: one request per row).

        A kind that sends several requests per row (judge's pairwise mode: `("ab", "ba")`)
        names them here (up to 4 lowercase letters each, in custom_ids: `a1ab_<row>`) and
        returns one content per key from `user_contents`. A row succeeds when all of its
        requests do; retries resend only the requests that need it.
        """
        return ("",)

    def user_contents(self, job: JobBase, template: PromptTemplate) -> dict[str, UserContent]:
        """What each row sends per request key (all of one `column`); default: `user_content`."""
        return {"": self.user_content(job, template)}

    def system_prompt(self, job: JobBase) -> str:
        """The cached system prompt: by default the job's `instructions`."""
        return job.instructions

    def output_schema(self, job: JobBase) -> dict[str, Any] | None:
        """The JSON Schema sent as `output_config.format`, or None for free text."""
        return None

    def output_checks(self, job: JobBase) -> OutputChecks | None:
        """What the parse step checks every output against (None: any non-empty text)."""
        schema = self.output_schema(job)
        return None if schema is None else compile_checks(schema)

    def truncated_outcome(self, job: JobBase) -> Literal["invalid_output", "truncated"]:
        """What an output cut at max_tokens is: `invalid_output` (asked again, like any
        unusable output) or `truncated` (kept as it is: final, counted apart)."""
        return "invalid_output"

    def params(self, job: JobBase, content: Any) -> "MessageCreateParamsNonStreaming":
        """The Messages params of one request whose user message is `content`."""
        system: TextBlockParam = {"type": "text", "text": self.system_prompt(job)}
        if job.cache_ttl is CacheTTL.one_hour:
            system["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
        elif job.cache_ttl is CacheTTL.five_minutes:
            system["cache_control"] = {"type": "ephemeral", "ttl": "5m"}
        params: MessageCreateParamsNonStreaming = {
            "model": job.model,
            "max_tokens": job.max_tokens,
            "system": [system],
            "messages": [{"role": "user", "content": content}],
        }
        schema = self.output_schema(job)
        if schema is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return params

    def load_batch(self, con: "duckdb.DuckDBPyConnection", job: JobBase, batch_id: str) -> None:
        """Land one batch in the kind's own tables (runs inside the batch's transaction)."""
        for name in self.batch_loads:
            con.execute(load_sql(name), {"job_name": job.name, "batch_id": batch_id})

    def delete_stale(
        self, con: "duckdb.DuckDBPyConnection", job: JobBase, batch_ids: list[str]
    ) -> None:
        """Forget what the kind's tables hold of batches the job no longer has."""
        for name in self.stale_deletes:
            con.execute(load_sql(name), {"job_name": job.name, "batch_ids": batch_ids})

    def check_tables(self, con: "duckdb.DuckDBPyConnection", job: JobBase) -> None:
        """Before anything is sent: raise if the warehouse holds a table of the kind's that
        this job could not load into (e.g. a typed output table of another schema)."""

    def summarize(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> list[SummaryDetail]:
        """What the kind adds to the job summary (read from the warehouse)."""
        return []

    def write_outputs(self, con: "duckdb.DuckDBPyConnection", job: JobBase, out: Path) -> None:
        """Write the job's outputs (see `outputs`) to the Parquet file `out`."""
        con.execute(load_sql(self.outputs), {"job_name": job.name, "out": str(out)})
