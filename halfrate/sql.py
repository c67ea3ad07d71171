"""The one place that knows where the SQL lives: `load_sql("schema/jobs")` reads sql/schema/jobs.sql.

SQL files hold one statement or model each. Values never go into the text: callers pass them
as DuckDB parameters (`$name`).
"""

import re
from functools import cache
from pathlib import Path

# halfrate runs from the repository (an editable install), so sql/ sits next to the package.
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

_NAME = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+)*")


class SqlFileError(LookupError):
    """A SQL file that is not there, or a name that cannot be one."""


@cache
def load_sql(name: str) -> str:
    """The text of sql/<name>.sql (cached); `name` is a snake_case path without the suffix."""
    if not _NAME.fullmatch(name):
        raise SqlFileError(f"{name!r}: SQL names are snake_case paths like 'schema/jobs'")
    path = SQL_DIR / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SqlFileError(
            f"{path}: no such SQL file; halfrate expects its sql/ folder next to the package "
            "(install it in editable mode from the repository: `uv sync` or `pip install -e .`)"
        ) from None
