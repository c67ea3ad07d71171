"""The `label` kind: one label per row from a fixed list, optionally scored against a gold column.

Requests: the rendered prompt after the cached instructions, with the output constrained to
`{"label": <one of labels>}`. Results land in the generic `outcomes` table; the `labels` view
(sql/kinds/label/labels.sql) reads the label back out of each row's output and compares it with
the row's gold label, and the summary adds the accuracy against gold.
"""

from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from halfrate.kinds.base import DISTINCT_CHOICES, JobBase, Kind, SummaryDetail
from halfrate.sql import load_sql

if TYPE_CHECKING:
    import duckdb


class LabelJob(JobBase):
    """A labelling job: every row gets exactly one of `labels`."""

    kind: Literal["label"] = Field("label", description="label: one label per row.")
    labels: list[str] = Field(
        description="Allowed labels (at least two, unique, non-empty).",
        json_schema_extra=DISTINCT_CHOICES,  # the model's check below, for forms
    )
    gold_column: str | None = Field(
        None, description="Optional column with the expected label (reports accuracy)."
    )

    @model_validator(mode="after")
    def _check_labels(self) -> Self:
        if len(self.labels) < 2:
            raise ValueError("labels: a label job needs at least two labels")
        if len(set(self.labels)) != len(self.labels) or any(not x.strip() for x in self.labels):
            raise ValueError("labels: labels must be unique, non-empty strings")
        return self


class LabelKind(Kind):
    name = "label"
    config = LabelJob
    views = ("kinds/label/labels",)
    outputs = "kinds/label/outputs"

    def source_columns(self, job: JobBase) -> dict[str, str]:
        assert isinstance(job, LabelJob)
        return {"gold": job.gold_column} if job.gold_column else {}

    def output_schema(self, job: JobBase) -> dict[str, Any]:
        assert isinstance(job, LabelJob)
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": list(job.labels)}},
            "required": ["label"],
            "additionalProperties": False,
        }

    def summarize(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> list[SummaryDetail]:
        row = con.execute(load_sql("kinds/label/accuracy"), {"job_name": job_name}).fetchone()
        gold_rows, accuracy = row or (0, None)
        details = [
            SummaryDetail(
                name="gold_rows",
                title="Rows with gold",
                value=gold_rows,
                text=f"{gold_rows:,}",
                shown=False,
            )
        ]
        if accuracy is not None:
            text = f"{accuracy:.1%} of {gold_rows:,} rows"
            details.append(
                SummaryDetail(
                    name="accuracy", title="Accuracy vs gold", value=float(accuracy), text=text
                )
            )
        return details


LABEL = LabelKind()
