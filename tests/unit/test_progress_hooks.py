"""The core's long steps report progress per record batch (never per row), to a hook only the
CLI sets; with none set, nothing is reported and nothing is printed."""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
import pytest

from halfrate import progress_hooks
from halfrate.build import build_requests
from halfrate.download import VERIFY_BLOCK, verify_results
from halfrate.extract import extract_rows
from halfrate.kinds.label import LabelJob
from halfrate.ledger import Ledger
from halfrate.progress_hooks import SILENT, Unit, set_hook, step
from halfrate.settings import Settings
from halfrate.workspace import JobPaths

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Recorded:
    description: str
    total: int | None
    unit: Unit
    advances: list[int] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    finished: bool = False

    def advance(self, amount: int) -> None:
        self.advances.append(amount)

    def describe(self, description: str) -> None:
        self.descriptions.append(description)

    def set_total(self, total: int | None) -> None:
        self.total = total


@dataclass
class Recorder:
    """A ProgressHook that keeps every step it is shown."""

    steps: list[Recorded] = field(default_factory=list)

    def start(self, description: str, total: int | None, unit: Unit) -> Recorded:
        self.steps.append(Recorded(description, total, unit))
        return self.steps[-1]

    def finish(self, progress: Recorded) -> None:  # type: ignore[override]
        progress.finished = True

    def named(self, pattern: str) -> Recorded:
        (found,) = [s for s in self.steps if re.search(pattern, s.description)]
        return found


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    previous = set_hook(hook)
    yield hook
    set_hook(previous)


def label_job(source: Path) -> LabelJob:
    return LabelJob(
        name="t", source=source, instructions="Label it.", labels=["a", "b"], cache_ttl="none"
    )


def parquet_source(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "rows.parquet"
    texts = [f"text number {i} " * 20 for i in range(rows)]
    pl.DataFrame({"id": [f"r{i}" for i in range(rows)], "text": texts}).write_parquet(
        path, row_group_size=2_000
    )
    return path


def test_without_a_hook_a_step_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    assert set_hook(None) is None  # nothing in the core or its callers set one
    with step("build attempt 1", 10, "requests") as progress:
        assert progress is SILENT
        progress.advance(10)
        progress.describe("x")
        progress.set_total(20)
    assert capsys.readouterr() == ("", "")


def test_no_task_or_flow_sets_a_hook() -> None:
    """Only the CLI shows progress: a deployment's run (tasks, flows) never draws anything."""
    for folder in ("tasks", "flows", "halfrate"):
        for source in (REPO / folder).rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            if source.name != "progress_hooks.py":
                assert "set_hook" not in text, source


def test_extract_and_build_report_per_record_batch(tmp_path: Path, recorder: Recorder) -> None:
    rows = 20_000
    job = label_job(parquet_source(tmp_path, rows))
    paths = JobPaths(tmp_path / "job")
    extract_rows(job, paths, Settings())
    checking, writing = recorder.named("checking rows"), recorder.named("writing rows")
    for seen in (checking, writing):
        assert seen.total == rows and sum(seen.advances) == rows and seen.finished
        assert len(seen.advances) <= 20, len(seen.advances)  # batches, not rows
    ledger = Ledger.create(paths.ledger)
    build_requests(job, paths, ledger, 1, paths.rows, Settings(), prime=False)
    build = recorder.named("^build attempt 1$")
    assert (build.total, build.unit, sum(build.advances)) == (rows, "requests", rows)
    assert len(build.advances) <= 20 and build.finished


def test_a_csv_extract_is_shown_as_activity(tmp_path: Path, recorder: Recorder) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("id,text\n1,hello\n2,world\n")
    extract_rows(label_job(source), JobPaths(tmp_path / "job"), Settings())
    for seen in recorder.steps:  # Polars streams a CSV: no count to tell, so none is faked
        assert seen.total is None and seen.advances == [] and seen.finished


def test_verify_reports_per_block_of_lines(tmp_path: Path, recorder: Recorder) -> None:
    lines = 30_000
    ids = [f"a1_r{i}" for i in range(lines)]
    index = tmp_path / "index.parquet"
    pl.DataFrame({"custom_id": ids}).write_parquet(index)
    results = tmp_path / "results.jsonl"
    padding = "x" * 300  # ~10 MB: three blocks
    with results.open("wb") as fh:
        for custom_id in ids:
            line = {"custom_id": custom_id, "result": {"type": "succeeded", "pad": padding}}
            fh.write(orjson.dumps(line) + b"\n")
    with step("verify part-0001", lines, "results") as progress:
        check = verify_results(results, index, {"succeeded": lines}, progress)
    assert check.ok and check.lines == lines
    seen = recorder.named("verify")
    assert sum(seen.advances) == lines
    assert 1 < len(seen.advances) <= results.stat().st_size // VERIFY_BLOCK + 1


def test_a_step_that_fails_still_ends(recorder: Recorder) -> None:
    with pytest.raises(RuntimeError), step("load into w.duckdb", 5, "results"):
        raise RuntimeError("boom")
    assert recorder.steps[0].finished


def test_the_hook_is_the_process_s(recorder: Recorder) -> None:
    """Prefect runs a task's function in a worker thread of the CLI's process: it reports to
    the hook the CLI set."""
    import threading

    def task() -> None:
        with step("build attempt 2", 1, "requests") as progress:
            progress.advance(1)

    worker = threading.Thread(target=task)
    worker.start()
    worker.join()
    assert recorder.named("attempt 2").advances == [1]
    assert progress_hooks._hook is recorder
