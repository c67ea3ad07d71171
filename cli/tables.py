"""`halfrate sql`'s results for people: numbers formatted, the table fitted to the terminal.

Integers are grouped (1,234,567; not ids), floats get four significant digits (0.7143,
12.35, 1,235), DECIMALs are shown exactly, money (`*_usd`) as everywhere in halfrate (cents;
more decimals under a dollar). A table wider than the terminal keeps its first columns whole
(long values cut at `MAX_CELL` characters with …) and names the others; `--wide` shows every
column and value in full, `--csv` writes the raw values for machines. A few rows too wide
for the terminal (`select * from job_costs`) are shown turned, a line per column, when that
shows every column.
"""

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.cells import cell_len
from rich.table import Table

from cli.output import plain

TURN_ROWS = 5
"""At most this many rows are turned (a line per column) when their columns do not fit."""
MAX_CELL = 40
"""Characters of a value shown before it is cut (not with --wide)."""
SIGNIFICANT = 4
"""Significant digits of a float shown (at least its whole part)."""
_COLUMN_OVERHEAD = 3  # a column's padding and its border
_ID_LIKE = re.compile(r"^(id|rowid|year)$|_(id|year)$", re.IGNORECASE)


def cell(name: str, value: object) -> str:
    """A value as people read it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name.endswith("_usd") and isinstance(value, int | float | Decimal):
        from halfrate.summary import format_usd

        return format_usd(value)
    if isinstance(value, int):
        return str(value) if _ID_LIKE.search(name) else f"{value:,}"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return f"{value:,}" if value.is_finite() else str(value)
    return str(value)


def _float(value: float) -> str:
    if not math.isfinite(value) or value == 0:
        return str(value) if value else "0"
    if not 1e-6 <= abs(value) < 1e15:
        return f"{value:.{SIGNIFICANT - 1}e}"
    whole_digits = math.floor(math.log10(abs(value))) + 1
    places = max(0, SIGNIFICANT - whole_digits)
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Fitted:
    """A result table and the columns that did not fit beside it."""

    table: Table
    hidden: list[str]
    width: int
    """The table's natural width (what `--wide` prints it at)."""
    turned: bool = False
    """A line per column, a column per row."""


def result_table(names: list[str], rows: list[tuple[Any, ...]], width: int, wide: bool) -> Fitted:
    """The rows as a table `width` columns wide at most (`wide`: every column, in full)."""
    cells = [[cell(name, v) for name, v in zip(names, row, strict=True)] for row in rows]
    numeric = [_numeric(i, rows) for i in range(len(names))]
    widths = [max([cell_len(n), *(cell_len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    if not wide:
        widths = [
            max(min(w, MAX_CELL), min(cell_len(n), MAX_CELL))
            for w, n in zip(widths, names, strict=True)
        ]
    shown = len(names) if wide else _fitting(widths, width)
    if shown < len(names) and len(rows) <= TURN_ROWS:
        turned = _turned(names, cells, numeric, width)
        if turned is not None:
            return turned
    table = Table()
    for i in range(shown):
        table.add_column(
            plain(names[i]),
            justify="right" if numeric[i] else "left",
            no_wrap=True,
            overflow="fold" if wide else "ellipsis",
            max_width=None if wide else MAX_CELL,
        )
    for row in cells:
        table.add_row(*(plain(value) for value in row[:shown]))
    natural = sum(widths[:shown]) + _COLUMN_OVERHEAD * shown + 1
    return Fitted(table, names[shown:], natural)


def _turned(
    names: list[str], cells: list[list[str]], numeric: list[bool], width: int
) -> Fitted | None:
    """The rows turned (a line per column), if that fits in `width`."""
    widths = [max(map(cell_len, names))]
    widths += [
        min(MAX_CELL, max([cell_len(str(n)), *map(cell_len, row)]))
        for n, row in enumerate(cells, start=1)
    ]
    natural = sum(widths) + _COLUMN_OVERHEAD * len(widths) + 1
    if natural > width:
        return None
    table = Table()
    table.add_column(plain("column"), no_wrap=True)
    for n in range(1, len(cells) + 1):
        table.add_column(plain(str(n)), no_wrap=True, overflow="ellipsis", max_width=MAX_CELL)
    for i, name in enumerate(names):
        justify = "right" if numeric[i] else "left"
        values = [plain(row[i], "") for row in cells]
        for value in values:
            value.justify = justify
        table.add_row(plain(name), *values)
    return Fitted(table, [], natural, turned=True)


def _numeric(column: int, rows: list[tuple[Any, ...]]) -> bool:
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    )


def _fitting(widths: list[int], width: int) -> int:
    """How many columns, from the first, fit in `width` (at least one)."""
    used, count = 1, 0
    for w in widths:
        used += w + _COLUMN_OVERHEAD
        if used > width and count:
            break
        count += 1
    return count


def one_line(message: str) -> str:
    """DuckDB's error as one line: its message and hints, then where (line, column)."""
    head, _, context = message.strip().partition("\n\n")
    text = " ".join(part.strip() for part in head.splitlines() if part.strip())
    where = re.match(r"LINE (\d+): ", context)
    caret = context.splitlines()[-1] if context else ""
    if where and "^" in caret:
        column = caret.index("^") - len(where.group(0)) + 1
        text += f" (line {where.group(1)}, column {column})"
    if "read-only mode" in text:
        text += " (halfrate sql opens the warehouse read-only)"
    return text
