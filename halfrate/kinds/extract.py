"""The `extract` kind: one typed record per row or document, as the job's JSON Schema says.

Requests: the row's text (or its document: a PDF or image from a folder source, as a base64
block) after the cached instructions, with the output constrained to the schema (the API's
form of it). Every output is validated against the whole schema; an invalid one is asked again.
Valid records land in the job's typed table (`output_table`, one column per top-level
property: halfrate/typed_table.py). `gold_columns` names, per property, a source column with
the expected value: the `extract_accuracy` view and the summary score each field against it.
"""

from typing import TYPE_CHECKING, Literal, Self

from pydantic import Field, model_validator

from halfrate.kinds.base import JobBase, SummaryDetail
from halfrate.kinds.records import RecordJob, RecordKind
from halfrate.sql import load_sql

if TYPE_CHECKING:
    import duckdb

GOLD_PREFIX = "gold."
"""Extract carries a gold column per field as `gold.<field>`, packed into one JSON `gold`."""


class ExtractJob(RecordJob):
    """An extraction job: every row (or document) becomes one record of `schema`."""

    kind: Literal["extract"] = Field("extract", description="extract: one typed record per row.")
    gold_columns: dict[str, str] | None = Field(
        None,
        description="Optional: schema property -> source column with its expected value "
        "(reports accuracy per field).",
    )

    @model_validator(mode="after")
    def _needs_a_schema(self) -> Self:
        schema = self.record_schema
        if schema is None:
            raise ValueError("an extract job needs schema (a JSON Schema) or schema_model")
        fields = set(schema.get("properties") or {})
        unknown = [name for name in self.gold_columns or {} if name not in fields]
        if unknown:
            raise ValueError(
                f"gold_columns: {', '.join(map(repr, unknown))} is not a property of the "
                f"schema; its properties are: {', '.join(fields)}"
            )
        return self


class ExtractKind(RecordKind):
    name = "extract"
    config = ExtractJob
    views = ("kinds/extract/extract_accuracy",)

    def source_columns(self, job: JobBase) -> dict[str, str]:
        assert isinstance(job, ExtractJob)
        gold = job.gold_columns or {}
        return {GOLD_PREFIX + name: column for name, column in gold.items()}

    def summarize(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> list[SummaryDetail]:
        rows = con.execute(load_sql("kinds/extract/field_accuracy"), {"job_name": job_name})
        return [
            SummaryDetail(
                name=f"accuracy.{field}",
                title=f"{field} vs gold",
                value=float(accuracy),
                text=f"{accuracy:.1%} of {n:,} rows",
            )
            for field, n, _, accuracy in rows.fetchall()
            if accuracy is not None
        ]


EXTRACT = ExtractKind()
