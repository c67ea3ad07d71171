"""`halfrate sql`: numbers for people, tables fitted to the terminal, --wide and --csv for the
rest, and a bad query answered in one line."""

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cli import output
from cli.app import app
from cli.tables import cell
from halfrate.settings import get_settings

runner = CliRunner()


@pytest.fixture
def warehouse() -> Path:
    path = get_settings().warehouse
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(
            """create table costs as select * from (values
                ('big-job', 1234567, 2024, 0.71428571::double, 1234.5678::decimal(18,4),
                 29.0312345::decimal(24,12), 'claude-haiku-4-5'),
                ('small-job', 693, 2025, 12.3456::double, 0.5000::decimal(18,4),
                 0.117142::decimal(24,12), 'claude-sonnet-5')
            ) t(job_name, rows, year, accuracy, tokens_per_row, cost_usd, model)"""
        )
        con.execute(
            "create table wide as select range as row_id, "
            + ", ".join(f"'value {i} of a rather long row' as column_{i}" for i in range(12))
            + " from range(8)"
        )
    return path


@pytest.fixture
def width(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(output.console, "width", 100)
    yield 100


def sql(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["sql", *args])
    return result.exit_code, result.stdout, result.stderr if result.stderr_bytes else ""


def test_numbers_read_as_numbers() -> None:
    assert cell("rows", 1234567) == "1,234,567"
    assert cell("row_id", 1234567) == "1234567" and cell("year", 2024) == "2024"
    assert cell("accuracy", 0.71428571) == "0.7143"
    assert cell("mean", 12.3456) == "12.35" and cell("mean", 1234.5678) == "1,235"
    assert cell("share", 0.000123456) == "0.0001235" and cell("x", 1e-9) == "1.000e-09"
    assert cell("x", 2.0) == "2" and cell("x", 0.0) == "0" and cell("x", float("nan")) == "nan"
    assert cell("tokens", Decimal("1234.5000")) == "1,234.5000"  # a DECIMAL as it is
    assert cell("cost_usd", Decimal("29.031234500000")) == "$29.03"  # money as halfrate shows it
    assert cell("cost_usd", Decimal("0.117142000000")) == "$0.1171"
    assert cell("ok", True) == "true" and cell("x", None) == ""


def test_a_table_shows_formatted_numbers(warehouse: Path, width: int) -> None:
    code, out, _ = sql("select job_name, rows, year, accuracy, cost_usd from costs")
    assert code == 0
    assert "1,234,567" in out and "2024" in out and "0.7143" in out and "$29.03" in out
    assert "12.35" in out and "$0.1171" in out
    assert "(no rows)" not in out


def test_a_wide_table_keeps_its_first_columns_and_names_the_others(
    warehouse: Path, width: int
) -> None:
    code, out, _ = sql("select * from wide")
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "row_id" in lines[1] and "column_0" in lines[1]
    assert "value 0 of a rather long row" in out  # shown whole: it fits
    assert "more columns:" in out and "column_11" in out.split("more columns:")[1]
    assert "--wide shows them all" in out


def test_wide_shows_every_column_in_full(warehouse: Path, width: int) -> None:
    code, out, _ = sql("select * from wide", "--wide")
    assert code == 0
    assert "column_11" in out.splitlines()[1] and "more columns" not in out
    assert out.count("value 11 of a rather long row") == 8


def test_a_few_rows_too_wide_are_turned(warehouse: Path, width: int) -> None:
    code, out, _ = sql("select * from wide limit 2")
    assert code == 0
    assert "a line per column" in out and "more columns" not in out
    column_lines = [line for line in out.splitlines() if "column_11" in line]
    assert len(column_lines) == 1 and column_lines[0].count("value 11 of a rather long row") == 2


def test_csv_is_raw_and_complete(warehouse: Path) -> None:
    code, out, _ = sql("select job_name, rows, cost_usd, accuracy from costs", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["job_name", "rows", "cost_usd", "accuracy"]
    assert rows[1] == ["big-job", "1234567", "29.031234500000", "0.71428571"]


def test_csv_with_no_rows_is_its_header(warehouse: Path) -> None:
    code, out, err = sql("select job_name, rows from costs where false", "--csv")
    assert (code, out, err) == (0, "job_name,rows\n", "")
    code, out, _ = sql("select job_name, rows from costs where false")
    assert code == 0 and "(no rows)" in out


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("selec 1", 'Parser Error: syntax error at or near "selec" (line 1, column 1)'),
        (
            "select nope from costs",
            'Binder Error: Referenced column "nope" not found in FROM clause! Candidate bindings: ',
        ),
        ("select * from cost", "Catalog Error: Table with name cost does not exist! Did you"),
        ("drop table costs", "read-only mode! (halfrate sql opens the warehouse read-only)"),
    ],
)
def test_a_bad_query_is_one_line(warehouse: Path, query: str, expected: str) -> None:
    code, out, err = sql(query)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err, err
