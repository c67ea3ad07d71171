"""The `generate` kind: free text per row, or a record when the job gives a `schema`.

Requests: the rendered prompt after the cached instructions (with a schema: the output
constrained to it, as for extract). Every answered row lands in `generations` (its text, stop
reason and tokens, per batch); with a schema, valid records also land in the job's typed table.
An output cut at `max_tokens` is kept and counted as truncated (final state `truncated`); with
`retry_truncated: true` it is asked again like an invalid output instead.
"""

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from halfrate.kinds.base import JobBase, SummaryDetail
from halfrate.kinds.records import RecordJob, RecordKind
from halfrate.sql import load_sql

if TYPE_CHECKING:
    import duckdb


class GenerateJob(RecordJob):
    """A generation job: every row gets a text (or a record of `schema`)."""

    kind: Literal["generate"] = Field(
        "generate", description="generate: text (or a record) per row."
    )
    retry_truncated: bool = Field(
        False,
        description="Ask again when an output hits max_tokens (default: keep it, counted as "
        "truncated).",
    )


class GenerateKind(RecordKind):
    name = "generate"
    config = GenerateJob
    tables = ("kinds/generate/generations",)
    batch_loads = (
        "kinds/generate/delete_batch_generations",
        "kinds/generate/insert_batch_generations",
    )
    stale_deletes = ("kinds/generate/delete_stale_generations",)
    outputs = "kinds/generate/outputs"

    def truncated_outcome(self, job: JobBase) -> Literal["invalid_output", "truncated"]:
        assert isinstance(job, GenerateJob)
        return "invalid_output" if job.retry_truncated else "truncated"

    def summarize(self, con: "duckdb.DuckDBPyConnection", job_name: str) -> list[SummaryDetail]:
        row = con.execute(load_sql("kinds/generate/summary"), {"job_name": job_name}).fetchone()
        generated, truncated, mean_tokens = row or (0, 0, None)
        details = [
            SummaryDetail(
                name="truncated",
                title="Truncated (max_tokens)",
                value=truncated,
                text=f"{truncated:,} of {generated:,} generated rows",
            )
        ]
        if mean_tokens is not None:
            details.append(
                SummaryDetail(
                    name="mean_output_tokens",
                    title="Mean output tokens",
                    value=float(mean_tokens),
                    text=f"{mean_tokens:,.0f}",
                )
            )
        return details


GENERATE = GenerateKind()
