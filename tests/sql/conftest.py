"""Fixtures for the warehouse tests: a fresh DuckDB file with the schema."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from halfrate.warehouse import connect, ensure_schema


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb", retry_seconds=0)
    ensure_schema(connection)
    yield connection
    connection.close()
