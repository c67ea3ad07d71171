"""Checks before any paid call: the warehouse, the job folder, the key, and a lost ledger.

A run pays for its first batch minutes after it starts and loads it much later. What would
make that load fail (a corrupt or read-only warehouse, an unwritable job folder) or every call
fail (a refused key) is checked first, so it is found before anything is paid for.

It also refuses a job whose ledger was lost: when this job's ledger has never recorded a
create but the warehouse knows batches of a job with this name (the job folder was deleted
or moved), sending would pay for every row a second time. `halfrate recover NAME` rebuilds
the ledger instead. Batches older than a `--restart` of the job are not counted: a restart
starts over on purpose.
"""

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from halfrate.errors import ActionableError, APIError
from halfrate.gateway import BatchGateway
from halfrate.ledger import RESTART_KEY, Ledger
from halfrate.settings import Settings
from halfrate.sql import load_sql
from halfrate.warehouse import WarehouseBusyError, connect, ensure_schema
from halfrate.workspace import JobPaths

log = logging.getLogger(__name__)

BUSY_WAIT_S = 10.0
"""How long preflight waits for a warehouse another process holds before it checks without it."""


class PreflightError(RuntimeError, ActionableError):
    """Something that would make the job fail is wrong; nothing was sent."""


class LedgerLostError(PreflightError):
    """The warehouse knows batches of this job, but its ledger does not: refuse to resend."""


def preflight(job_name: str, paths: JobPaths, settings: Settings, gateway: BatchGateway) -> None:
    """Raise `PreflightError` (naming what to fix) unless the job can run to its end."""
    _check_folder(paths.root)
    known = _check_warehouse(settings, job_name, Ledger(paths.ledger))
    if known:
        shown = ", ".join(known[:3]) + (", ..." if len(known) > 3 else "")
        raise LedgerLostError(
            f"job {job_name!r}: the warehouse {settings.warehouse} holds {len(known)} batch(es) "
            f"of this job ({shown}) but its ledger {paths.ledger} knows none: the job folder "
            "was deleted or moved after it had sent batches. Nothing was sent now, as sending "
            f"again would pay for those rows twice. Run `halfrate recover {job_name}` to rebuild "
            "the ledger from the warehouse and the API's batch list, then rerun the job (or "
            "rerun with --restart to start the job over on purpose)."
        )
    check_key(gateway)


def _check_folder(root: Path) -> None:
    probe = root / f".preflight-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise PreflightError(
            f"{root}: the job folder is not writable ({exc.strerror or exc}); nothing was sent. "
            "Fix its permissions or point HALFRATE_WORKDIR elsewhere."
        ) from None


def _check_warehouse(settings: Settings, job_name: str, ledger: Ledger) -> list[str]:
    """Open the warehouse for writing and ensure its schema; the batches it knows of a job
    whose ledger has none (an empty list when the ledger has some)."""
    path = settings.warehouse
    try:
        con = connect(path, retry_seconds=min(BUSY_WAIT_S, settings.load_retry_seconds))
    except WarehouseBusyError:
        log.warning(
            "%s is held by another process: it cannot be checked now (the results will stay "
            "staged until it is free)",
            path,
        )
        return []
    except (duckdb.Error, OSError) as exc:
        raise _unusable(path, exc) from None
    try:
        with con:
            ensure_schema(con)
            if ledger.has_batches():
                return []
            since = _restart_time(ledger.get_meta(RESTART_KEY))
            rows = con.execute(
                load_sql("recover/job_batches"), {"job_name": job_name, "since": since}
            ).fetchall()
    except duckdb.Error as exc:
        raise _unusable(path, exc) from None
    return [str(r[0]) for r in rows]


def _unusable(path: Path, exc: BaseException) -> PreflightError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PreflightError(
        f"{path}: the warehouse cannot be opened for writing ({detail}); nothing was sent. "
        "Fix its permissions, or move a damaged file aside (a new warehouse is created), "
        "then rerun the job."
    )


def check_key(gateway: BatchGateway) -> None:
    """One free authenticated call: a refused key stops here (a passing fault is let through)."""
    try:
        gateway.check_key()
    except APIError as exc:
        if exc.transient:
            log.warning("could not check the API key now (%s); going on", exc)
            return
        raise PreflightError(
            f"the API refused a first, free call ({exc}); nothing was sent. Check "
            "ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL)."
        ) from None


def _restart_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).replace(tzinfo=None)
