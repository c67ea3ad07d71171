"""A job's folder: the staged files every step reads and writes, and its lock.

data/jobs/<name>/
  job.json                       resolved JobConfig + fingerprint (written once)
  ledger.sqlite                  request files and batches: the source of truth for resume
  extract/rows.parquet           valid rows in source order: row_id, text (the rendered prompt) or
                                 content (JSON content blocks), + the kind's columns (label: gold)
  extract/quarantine.parquet     rejected rows: row_number, row_id, reason
  extract/upstream.parquet       a job source (job:<name>): that job's outputs joined to its rows
  estimate.json                  the static cost estimate (and the priming decision)
  pilot.json                     a pilot's measurements and projection (halfrate/pilot.py)
  requests/a<N>/part-<NNNN>.jsonl     one request per line, one file per batch (a1 also has
                                 prime.jsonl and, with a pilot, pilot-<NNNN>.jsonl)
  requests/a<N>/part-<NNNN>.index.parquet   custom_id, row_id for each line
  results/<batch_id>.jsonl       raw results as downloaded (the replay source)
  results/<batch_id>.outcomes.parquet  custom_id and retry outcome of every result (written by
                                 the load, which parses the raw file into the warehouse; read
                                 by the retry plan)
"""

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from halfrate.config import JobConfig
from halfrate.errors import ActionableError
from halfrate.ledger import RESTART_KEY, Ledger, LedgerMissingError, now_iso


class JobConflictError(RuntimeError, ActionableError):
    """The job name is taken by a job with different settings, or the job is running elsewhere."""


@dataclass(frozen=True)
class JobPaths:
    """Where one job keeps its files."""

    root: Path

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def rows(self) -> Path:
        return self.root / "extract" / "rows.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "extract" / "quarantine.parquet"

    @property
    def upstream_rows(self) -> Path:
        """A job source's rows as extract read them: the upstream job's outputs joined to
        its source rows (halfrate/chain.py)."""
        return self.root / "extract" / "upstream.parquet"

    def requests_dir(self, attempt: int) -> Path:
        return self.root / "requests" / f"a{attempt}"

    def results_file(self, batch_id: str) -> Path:
        return self.root / "results" / f"{batch_id}.jsonl"

    def outcomes_file(self, batch_id: str) -> Path:
        return self.root / "results" / f"{batch_id}.outcomes.parquet"

    def todo_file(self, attempt: int) -> Path:
        """The rows a retry attempt re-sends (attempt 1 sends extract/rows.parquet)."""
        return self.requests_dir(attempt) / "todo.parquet"

    def index_file(self, request_file: str) -> Path:
        """The custom_id -> row_id index written beside a request file (a relative path)."""
        return self.root / (request_file.removesuffix(".jsonl") + ".index.parquet")

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def job_paths(workdir: Path, name: str) -> JobPaths:
    return JobPaths(workdir / name)


def open_job(workdir: Path, job: JobConfig, restart: bool = False) -> JobPaths:
    """Create the job folder, or check that an existing one belongs to the same job.

    A rerun with the same settings resumes. Different settings under the same name are refused
    (so a resumed job never mixes two prompts); `restart` moves the old folder aside first.
    """
    paths = job_paths(workdir, job.name)
    if restart and paths.root.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        shutil.move(paths.root, workdir / ".old" / f"{job.name}-{stamp}")
    paths.root.mkdir(parents=True, exist_ok=True)
    fresh = not paths.ledger.exists()
    record = {"fingerprint": job.fingerprint(), "config": job.model_dump(mode="json")}
    check_same_job(paths, job)
    write_atomic(paths.job_file, orjson.dumps(record, option=orjson.OPT_INDENT_2))
    ledger = Ledger.create(paths.ledger)  # the one place a job's ledger is made
    if restart and fresh:
        ledger.set_meta(RESTART_KEY, now_iso())  # batches of the old run are not this ledger's
    return paths


def check_same_job(paths: JobPaths, job: JobConfig) -> None:
    """Refuse a job whose name an existing job with different settings holds."""
    if not paths.job_file.exists():
        return
    previous = orjson.loads(paths.job_file.read_bytes())
    if previous["fingerprint"] != job.fingerprint():
        ignored = type(job)._NOT_FINGERPRINTED
        after = {k: v for k, v in job.model_dump(mode="json").items() if k not in ignored}
        changed = _changed_keys(previous.get("config", {}), after)
        raise JobConflictError(
            f"job {job.name!r} already exists in {paths.root} with different settings"
            f"{f' ({changed})' if changed else ''}; rerun with --restart to start it over "
            "(the old folder is kept under .old/), or give the job a new name"
        )


def _changed_keys(before: dict[str, object], after: dict[str, object]) -> str:
    keys = [k for k in after if before.get(k) != after[k]]
    return "changed: " + ", ".join(keys) if keys else ""


def write_atomic(path: Path, data: bytes) -> None:
    """Write a small file so that readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def job_lock(paths: JobPaths, timeout_note: str = "") -> Iterator[None]:
    """Hold the job's exclusive lock: only one process may submit or load for a job at a time.

    It never creates the job folder: a folder deleted under a running job stops it.
    """
    if not paths.root.is_dir():
        raise LedgerMissingError(
            f"the job folder {paths.root} is missing: it was deleted or moved while the job "
            f"had started. Nothing more is sent; run `halfrate recover {paths.root.name}`."
        )
    with open(paths.root / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobConflictError(
                f"job {paths.root.name!r} is being run by another process {timeout_note}".strip()
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
