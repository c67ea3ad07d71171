"""connect(): another process holding the warehouse makes us wait, then fail clearly."""

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from halfrate.warehouse import WarehouseBusyError, connect

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
sys.stdin.read()   # hold the write lock until our stdin closes
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A second process (DuckDB locks per process) with the warehouse open for writing."""
    path = tmp_path / "warehouse.duckdb"
    connect(path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield path, proc
    if proc.stdin and not proc.stdin.closed:
        proc.stdin.close()
    proc.wait(timeout=30)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_held_warehouse_raises_busy_with_what_to_do(
    held: tuple[Path, subprocess.Popen[str]], read_only: bool
) -> None:
    path, _ = held
    started = time.monotonic()
    with pytest.raises(WarehouseBusyError) as info:
        connect(path, read_only=read_only, retry_seconds=1)
    assert time.monotonic() - started >= 1  # it did wait and retry
    message = str(info.value)
    assert str(path) in message and "locked by another process" in message
    assert "staged files are kept" in message and "halfrate load" in message


def test_connect_succeeds_once_the_holder_exits(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, proc = held
    assert proc.stdin is not None
    releaser = threading.Timer(0.5, proc.stdin.close)
    releaser.start()
    con = connect(path, retry_seconds=60)
    releaser.join()
    assert con.execute("select 42").fetchone() == (42,)
    con.close()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.duckdb"
    folder.mkdir()
    with pytest.raises(Exception) as info:
        connect(folder, retry_seconds=30)
    assert not isinstance(info.value, WarehouseBusyError)


def test_reading_a_missing_warehouse_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no warehouse here yet; run a job first"):
        connect(tmp_path / "none.duckdb", read_only=True)
