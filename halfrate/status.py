"""Where jobs stand, read from their ledgers (works while the warehouse is busy)."""

from collections import Counter
from pathlib import Path

import orjson

from halfrate.config import JobConfig, parse_job
from halfrate.ledger import Ledger, LedgerMissingError
from halfrate.workspace import job_paths


def read_job(workdir: Path, name: str) -> JobConfig:
    """The resolved configuration a job was started with."""
    paths = job_paths(workdir, name)
    if not paths.job_file.exists():
        known = ", ".join(sorted(p.parent.name for p in workdir.glob("*/job.json"))) or "none"
        raise FileNotFoundError(f"no job named {name!r} in {workdir} (jobs: {known})")
    return parse_job(orjson.loads(paths.job_file.read_bytes())["config"], str(paths.job_file))


def list_jobs(workdir: Path) -> list[tuple[str, str, str, str]]:
    """One row per job: name, batches, batches by status, requests sent."""
    rows = []
    for job_file in sorted(workdir.glob("*/job.json")):
        try:
            records = Ledger(job_file.parent / "ledger.sqlite").records()
        except LedgerMissingError:
            name = job_file.parent.name
            rows.append((name, "?", f"ledger missing: `halfrate recover {name}`", "?"))
            continue
        by_status = Counter(str(r.status or "built") for r in records)
        sent = sum(r.file.n_requests for r in records if r.batch_id)
        rows.append(
            (
                job_file.parent.name,
                str(sum(1 for r in records if r.batch_id)),
                ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())),
                f"{sent:,}",
            )
        )
    return rows


def job_status_rows(workdir: Path, name: str) -> list[tuple[str, ...]]:
    """One row per request file of a job and the state of its batch."""
    read_job(workdir, name)  # a clear error for unknown jobs
    rows: list[tuple[str, ...]] = []
    for r in Ledger(job_paths(workdir, name).ledger).records():
        counts = r.request_counts or {}
        rows.append(
            (
                str(r.file.attempt),
                r.file.purpose,
                r.file.path,
                f"{r.file.n_requests:,}",
                r.batch_id or "-",
                str(r.status or "built"),
                ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "-",
                (r.expires_at or "-")[:19],
            )
        )
    return rows
