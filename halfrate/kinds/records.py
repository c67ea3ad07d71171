"""What the record kinds (extract, generate with a schema) share: the schema keys, the schema
sent to the API, the full validation of outputs, and the job's typed output table.

`RecordJob` holds the keys (`schema` | `schema_model`, `output_table`) and checks them when the
job is read; `RecordKind` sends the API's form of the schema, checks outputs against the full
schema, and lands every valid output in the typed table (halfrate/typed_table.py), per batch,
idempotently, inside the batch's load transaction.
"""

import hashlib
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

import orjson
from pydantic import Field, field_validator, model_validator

from halfrate.kinds.base import JobBase, Kind
from halfrate.output_checks import OutputChecks, compile_checks
from halfrate.record_schema import RecordSchemaError, api_schema, check_schema, model_schema
from halfrate.typed_table import TABLE_NAME, TypedTable, TypedTableError, check_table_name

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

with warnings.catch_warnings():  # `schema` is the key users write; BaseModel.schema() is legacy
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class RecordJob(JobBase):
        """A job whose outputs are records of a JSON Schema, landed in a typed table."""

        schema: dict[str, Any] | None = Field(  # type: ignore[assignment]
            None,
            description="JSON Schema of one record (an object); each top-level property "
            "becomes a typed column of output_table.",
        )
        schema_model: str | None = Field(
            None,
            pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
            description="'package.module:Model': a pydantic model whose JSON Schema is used "
            "instead of schema.",
        )
        output_table: str | None = Field(
            None,
            description="Warehouse table of the records (default: the job name with - as _).",
            json_schema_extra={"pattern": f"^{TABLE_NAME.pattern}$"},  # check_table_name's
        )

        # where the records land does not change the requests: a job can be pointed elsewhere
        _NOT_FINGERPRINTED: ClassVar[frozenset[str]] = JobBase._NOT_FINGERPRINTED | {"output_table"}

        @field_validator("schema")
        @classmethod
        def _check_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
            if value is not None:
                _checked(check_schema, value)
            return value

        @field_validator("schema_model")
        @classmethod
        def _check_schema_model(cls, value: str | None) -> str | None:
            if value is not None:
                _checked(model_schema, value)
            return value

        @field_validator("output_table")
        @classmethod
        def _check_output_table(cls, value: str | None) -> str | None:
            if value is not None:
                _checked(check_table_name, value)
            return value

        @model_validator(mode="after")
        def _one_schema(self) -> Self:
            if self.schema is not None and self.schema_model is not None:
                raise ValueError("give either schema or schema_model, not both")
            if self.record_schema is not None and self.output_table is None:
                try:
                    check_table_name(self.table_name)
                except TypedTableError as exc:
                    raise ValueError(f"{exc} (the job name's default): set output_table") from None
            return self

        @property
        def record_schema(self) -> dict[str, Any] | None:
            """The schema of one record: inline, or the model's (None: free text)."""
            if self.schema_model is not None:
                return model_schema(self.schema_model)
            return self.schema

        @property
        def table_name(self) -> str:
            """The typed table's name: output_table, or the job name with - as _."""
            return self.output_table or self.name.replace("-", "_")

        def fingerprint(self) -> str:
            """The model's schema is part of what the requests are: a changed model changes it."""
            base = super().fingerprint()
            if self.schema_model is None:
                return base
            schema = orjson.dumps(self.record_schema, option=orjson.OPT_SORT_KEYS)
            return hashlib.sha256(base.encode() + schema).hexdigest()[:16]


def _checked(check: Callable[[Any], Any], value: Any) -> None:
    """Run a check, its error as the ValueError pydantic reports under the key."""
    try:
        check(value)
    except (RecordSchemaError, TypedTableError) as exc:
        raise ValueError(str(exc)) from None


class RecordKind(Kind):
    """A kind whose outputs (when it has a schema) are records landed in a typed table."""

    def output_schema(self, job: JobBase) -> dict[str, Any] | None:
        schema = self._schema(job)
        return None if schema is None else api_schema(schema)

    def output_checks(self, job: JobBase) -> OutputChecks | None:
        schema = self._schema(job)  # the user's whole schema, not what the API was sent
        return None if schema is None else compile_checks(schema)

    def typed_table(self, job: JobBase) -> TypedTable | None:
        """The job's typed output table (None without a schema)."""
        schema = self._schema(job)
        assert isinstance(job, RecordJob)
        return None if schema is None else TypedTable.of(job.table_name, schema)

    def check_tables(self, con: "duckdb.DuckDBPyConnection", job: JobBase) -> None:
        table = self.typed_table(job)
        if table is not None:
            table.check(con)

    def load_batch(self, con: "duckdb.DuckDBPyConnection", job: JobBase, batch_id: str) -> None:
        super().load_batch(con, job, batch_id)
        table = self.typed_table(job)
        if table is not None:
            table.load_batch(con, job.name, batch_id)

    def write_outputs(self, con: "duckdb.DuckDBPyConnection", job: JobBase, out: "Path") -> None:
        """With a schema: the job's rows of its typed table (one column per property)."""
        table = self.typed_table(job)
        if table is None or not table.check(con):
            super().write_outputs(con, job, out)
            return
        con.execute(table.sql("kinds/typed/outputs"), {"job_name": job.name, "out": str(out)})

    def delete_stale(
        self, con: "duckdb.DuckDBPyConnection", job: JobBase, batch_ids: list[str]
    ) -> None:
        super().delete_stale(con, job, batch_ids)
        table = self.typed_table(job)
        if table is not None:
            table.sync(con, job.name)

    @staticmethod
    def _schema(job: JobBase) -> dict[str, Any] | None:
        assert isinstance(job, RecordJob)
        return job.record_schema
