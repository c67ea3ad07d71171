"""The kinds' own refusals are actionable errors (halfrate.errors.is_actionable): the CLI
prints them as one line with exit code 2 and no task retries them, like a bad job file."""

from pathlib import Path

import pytest

from halfrate.errors import is_actionable
from halfrate.export import ExportFormat, export_job
from halfrate.full_checks import validator_for
from halfrate.kinds.label import LabelJob
from halfrate.record_schema import model_schema
from halfrate.settings import Settings
from halfrate.typed_table import TypedTable
from halfrate.workspace import open_job


def test_a_schema_without_columns_is_actionable() -> None:
    with pytest.raises(ValueError, match="the schema has no properties") as caught:
        TypedTable.of("emails", {"type": "object", "properties": {}})
    assert is_actionable(caught.value)


def test_a_schema_model_that_cannot_be_imported_is_actionable() -> None:
    with pytest.raises(ValueError) as caught:
        model_schema("no_such_module_here:Record")
    assert is_actionable(caught.value), caught.value


def test_a_schema_the_validator_cannot_compile_is_actionable() -> None:
    with pytest.raises(ValueError) as caught:
        validator_for({"type": "object", "properties": {"x": {"type": "nonsense"}}})
    assert is_actionable(caught.value), caught.value


def test_an_export_before_any_load_is_actionable(tmp_path: Path) -> None:
    settings = Settings(workdir=tmp_path / "jobs", warehouse=tmp_path / "w.duckdb")
    job = LabelJob(
        name="tickets", source=tmp_path / "t.csv", instructions="Label.", labels=["a", "b"]
    )
    open_job(settings.workdir, job)
    with pytest.raises(ValueError, match="no warehouse at") as caught:
        export_job("tickets", settings, ExportFormat.parquet, None)
    assert is_actionable(caught.value)
