"""Submit request files as batches, exactly once.

The Message Batches API has no idempotency key, so a create whose response is lost (timeout,
dropped connection, crash, a 5xx from a proxy after the batch was committed) leaves us not
knowing whether we paid for a batch. The SDK would simply retry, making a second paid batch;
`gateway` turns its retries off for creates and this module decides instead:

1. Before each create, the ledger durably records an `intent` for the file; right after, the
   batch id. A crash in between leaves the intent behind.
2. An intent is never resent blindly. It is first *reconciled*: list the workspace's batches
   created since the intent (minus `clock_skew`, for the difference between our clock and the
   API's), and keep the candidates whose request count equals the file's and whose id no
   ledger knows (this job's, every job's in the workdir through `known_batch_ids`, and the
   batches once adopted by mistake, `foreign_batches`).
   - exactly one candidate: adopt it (note "reconciled after lost create response"). It is a
     hypothesis: `download` checks its results' custom_ids against the file and, on a
     mismatch, releases it as foreign (never canceled) and puts the file back to an intent;
   - none: list once more after `propagation_delay` (a new batch can take a moment to show),
     and only then clear the intent and create again;
   - several: raise `AmbiguousSubmissionError` naming them, and send nothing.
3. What a failed create means is decided by `halfrate.errors` (one definition):
   - an answer of the API itself (any status with an API error body, a 429, 4xx) means no
     batch was created: the intent is cleared. A passing refusal (429 with retry-after, 529,
     a 5xx with an error body) is simply sent again after its retry-after (or a backoff), a
     bounded number of times, then `SubmissionBusyError` (safe to retry). The spend limit
     (429 `enforced_spend_limit_reached`) raises `SpendLimitError` at once and is never
     retried. A 413 splits the file in two halves, recursively (see `_split`).
     Any other refusal raises `SubmissionRefusedError` naming the file;
   - no answer (a timeout, a dropped connection) or a 5xx without an API error body leaves the
     outcome unknown: the intent is kept and reconciled at once, for a bounded number of
     rounds with backoff, then `SubmissionUnknownError`, safe to retry: the next run
     reconciles before sending anything.
4. A job the user canceled (`halfrate cancel`, or a cancel from the Prefect UI) sends nothing
   more until a new run clears the cancel.
5. The processing queue (`halfrate.backpressure`): a file that does not fit (the job's own cap,
   or a 429 while the job has batches in flight) stops the submit without an error; it and the
   files after it wait for a batch to end. A file that may not become a batch at all (mode
   realtime, past the deadline) is left for the real-time sender, after any intent of it is
   reconciled.

Limits of the heuristic: two batches of the same size created in the same minutes by another
process on the same workspace whose ledger we cannot see (another machine, another workdir)
are indistinguishable from ours by (time, count). Then we either stop (several candidates) or,
if only the other one is visible, adopt the wrong batch, which `download` finds out and undoes.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from halfrate.backpressure import QueueFull, SubmitGate, hold, release
from halfrate.errors import ActionableError, APIError, ErrorKind
from halfrate.gateway import BatchGateway, RequestFileError, total_requests
from halfrate.ledger import UNSENT, BatchRecord, BatchStatus, Ledger
from halfrate.progress import cancel_batches
from halfrate.split import split_request_file
from halfrate.workspace import JobPaths, job_lock

if TYPE_CHECKING:
    from anthropic.types.messages import MessageBatch

log = logging.getLogger(__name__)

RECONCILED_NOTE = "reconciled after lost create response"
ADOPTED_NOTE = "adopted by hand"
RECOVERED_NOTE = "recovered from the warehouse"
ADOPTED_NOTES = (RECONCILED_NOTE, ADOPTED_NOTE, RECOVERED_NOTE)
"""Notes of batches this ledger did not see created: a hypothesis until their custom_ids check
out at download (a mismatch releases them as foreign and sends the file again)."""
MAX_RETRY_AFTER = 600.0
"""The longest retry-after honoured within one call; a longer one ends the call (retry later)."""


class SubmissionError(RuntimeError):
    """Base class of the errors `submit_pending` raises."""


class SubmissionRefusedError(SubmissionError, ActionableError):
    """The API refused a create: nothing was submitted for the file, and its intent is cleared."""


class SpendLimitError(SubmissionRefusedError):
    """The workspace's spend limit is reached: nothing was created, and retrying cannot help."""


class SubmissionRetryLaterError(SubmissionError):
    """Nothing more can be done now, and trying again later is safe (Prefect retries these)."""


class SubmissionBusyError(SubmissionRetryLaterError):
    """The API kept turning the create away (429, 529, 5xx): nothing was created."""


class SubmissionUnknownError(SubmissionRetryLaterError):
    """A create's outcome is still unknown after reconciling; rerunning is safe."""


class AmbiguousSubmissionError(SubmissionError, ActionableError):
    """Several unknown batches could be the lost one; nothing is sent until a person decides."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.candidates))


@dataclass(frozen=True)
class SubmitPolicy:
    """How patient reconciliation is."""

    clock_skew: timedelta = timedelta(minutes=10)
    """Batches created this long before the intent still count as candidates."""
    propagation_delay: float = 10.0
    """Seconds to wait before the second listing, when the first found nothing."""
    rounds: int = 3
    """Failed creates (or failed listings) tolerated per file and call."""
    backoff: tuple[float, ...] = (2.0, 10.0, 30.0)
    """Seconds to wait before each try after a failure (at least the answer's retry-after)."""


def submit_pending(
    ledger: Ledger,
    paths: JobPaths,
    gateway: BatchGateway,
    *,
    attempt: int,
    purpose: str | None = None,
    known_batch_ids: Callable[[], set[str]] | None = None,
    policy: SubmitPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    gate: SubmitGate | None = None,
) -> list[BatchRecord]:
    """Submit every request file of `attempt` (and `purpose`) that has no batch yet.

    Files are sent one at a time under the job lock; a file left with an `intent` by an
    earlier run is reconciled first. Returns the records of those files afterwards (every one
    then has a batch id, unless the user canceled the job). `known_batch_ids` lists the batch
    ids of every ledger in the workdir, so another job's batch is never adopted. `gate` holds
    files back for the processing queue (then they stay unsent: see `halfrate.backpressure`).
    """
    policy = policy or SubmitPolicy()
    gate = gate or SubmitGate(ledger)
    submitter = _Submitter(ledger, paths, gateway, known_batch_ids, policy, sleep, gate)
    with job_lock(paths):
        release(ledger)
        for record in ledger.records(attempt=attempt, purpose=purpose):
            if record.status not in UNSENT:
                continue
            if ledger.cancel_requested():
                log.warning("job canceled by the user: %s is not sent", record.file.path)
                break
            try:
                submitter.submit(record)
            except QueueFull as full:
                held = hold(ledger, full, gate.hold_backoff)
                log.warning(
                    "%s and the files after it wait for the processing queue (%s)%s",
                    record.file.path,
                    full.reason,
                    f"; trying again at {held.until} at the latest" if held.until else "",
                )
                break
        if ledger.cancel_requested():  # a cancel that came while a create was on its way
            cancel_batches(ledger, gateway)
        return ledger.records(attempt=attempt, purpose=purpose)


class _Submitter:
    def __init__(
        self,
        ledger: Ledger,
        paths: JobPaths,
        gateway: BatchGateway,
        known_batch_ids: Callable[[], set[str]] | None,
        policy: SubmitPolicy,
        sleep: Callable[[float], None],
        gate: SubmitGate,
    ) -> None:
        self.ledger = ledger
        self.paths = paths
        self.gateway = gateway
        self.known_batch_ids = known_batch_ids
        self.policy = policy
        self.sleep = sleep
        self.gate = gate

    def submit(self, record: BatchRecord) -> None:
        path = record.file.path
        failures = 0  # failed creates and failed listings of this file in this call
        last: APIError | None = None
        while True:
            if failures >= self.policy.rounds:
                raise self._give_up(record, last)
            if failures:
                self._backoff(failures, last)
            if self.ledger.record(path).status is BatchStatus.intent:
                try:
                    if self._reconcile(self.ledger.record(path)):
                        return
                except _ListingFailed as exc:
                    failures, last = failures + 1, exc.error
                    continue
                self.ledger.clear_intent(path, "no batch found for the intent")
            if not self.gate.batches_allowed():
                log.info("%s: not sent as a batch (it goes out in real time)", path)
                return
            self.gate.check_room(record.file.n_requests)
            self.ledger.record_intent(path)
            try:
                batch = self.gateway.create_from_file(
                    self.paths.root / path, record.file.body_bytes
                )
            except RequestFileError as exc:  # raised before the body was complete: nothing sent
                self.ledger.clear_intent(path, "request file unusable")
                raise SubmissionRefusedError(
                    f"{exc}. Nothing was submitted for this file."
                ) from None
            except APIError as exc:
                if exc.outcome_unknown:
                    log.warning("%s: create outcome unknown (%s); reconciling", path, exc)
                elif exc.kind is ErrorKind.too_large:
                    return self._split(record, exc)
                else:
                    self.ledger.clear_intent(path, f"create refused: {exc}")
                    if exc.kind is not ErrorKind.busy:
                        raise _refused(path, exc) from None
                    if exc.status == 429 and self.gate.in_flight():
                        raise QueueFull(str(exc), exc.retry_after, refused=True) from None
                    log.warning("%s: create turned away (%s); nothing was created", path, exc)
                failures, last = failures + 1, exc
                continue
            self.ledger.record_batch(path, batch.model_dump(mode="json"))
            release(self.ledger, created=True)
            log.info("%s: submitted as batch %s", path, batch.id)
            return

    def _split(self, record: BatchRecord, error: APIError) -> None:
        """The API refused the file as too large (nothing was created): send it in two halves.

        The halves are written, then registered together with the parent's `split` status in one
        ledger transaction, so a crash in between leaves the parent's intent, which reconciles
        (to nothing) and splits again into the same files. A single request that is still too
        large is recorded as `failed` with the reason; its row ends `failed`.
        """
        path = record.file.path
        if record.file.n_requests == 1:
            reason = (
                f"the API refuses this request as too large even alone ({error.status} "
                f"{error.error_type or ''}: {error.message}); shorten its text"
            )
            self.ledger.mark_failed(path, reason)
            log.warning("%s: %s", path, reason)
            return
        halves = split_request_file(self.paths, record.file)
        self.ledger.split(path, halves, f"too large for the API ({error}); sent in two halves")
        log.warning(
            "%s: too large for the API (413); split into %s", path, [h.path for h in halves]
        )
        for half in halves:
            self.submit(self.ledger.record(half.path))

    def _reconcile(self, record: BatchRecord) -> bool:
        """Adopt the batch an intent made, if the list shows exactly one; False if none."""
        assert record.intent_at is not None
        since = _parse_time(record.intent_at) - self.policy.clock_skew
        for listing in range(2):
            if listing:
                self.sleep(self.policy.propagation_delay)
            candidates = self._candidates(record, since)
            if len(candidates) > 1:
                raise _ambiguous(record, candidates)
            if candidates:
                batch = candidates[0]
                self.ledger.record_batch(
                    record.file.path, batch.model_dump(mode="json"), note=RECONCILED_NOTE
                )
                self.gateway.note_fresh(batch.id)
                log.warning(
                    "%s: adopted batch %s (%s)", record.file.path, batch.id, RECONCILED_NOTE
                )
                return True
        return False

    def _candidates(self, record: BatchRecord, since: datetime) -> list["MessageBatch"]:
        known = self.ledger.unadoptable_batch_ids()
        if self.known_batch_ids is not None:
            known |= self.known_batch_ids()
        try:
            return [
                b
                for b in self.gateway.iter_recent(since)
                if total_requests(b) == record.file.n_requests and b.id not in known
            ]
        except APIError as exc:
            if exc.transient:
                raise _ListingFailed(exc) from None
            raise

    def _backoff(self, failures: int, last: APIError | None) -> None:
        delays = self.policy.backoff or (0.0,)
        delay = delays[min(failures - 1, len(delays) - 1)]
        if last is not None and last.retry_after is not None:
            delay = max(delay, min(last.retry_after, MAX_RETRY_AFTER))
        self.sleep(delay)

    def _give_up(self, record: BatchRecord, error: APIError | None) -> SubmissionRetryLaterError:
        path = record.file.path
        tries = f"{self.policy.rounds} tries (last error: {error or 'none'})"
        if self.ledger.record(path).status is BatchStatus.intent:
            return SubmissionUnknownError(
                f"{path}: could not submit after {tries}; its intent is kept, and the next run "
                "reconciles before sending anything. It is safe to rerun the job."
            )
        return SubmissionBusyError(
            f"{path}: the API turned the create away {tries}; no batch was created for it, so "
            "the next run sends it again. It is safe to rerun the job."
        )


class _ListingFailed(Exception):
    """The list endpoint failed transiently while reconciling."""

    def __init__(self, error: APIError) -> None:
        super().__init__(str(error))
        self.error = error


_HINTS = {
    ErrorKind.auth: "the API key was rejected or may not create batches here: check "
    "ANTHROPIC_API_KEY",
    ErrorKind.invalid: "fix the request file (see the message) and rebuild the requests",
    ErrorKind.not_found: "the endpoint was not found: check ANTHROPIC_BASE_URL",
}


def _refused(path: str, exc: APIError) -> SubmissionRefusedError:
    if exc.kind is ErrorKind.spend_limit:
        return SpendLimitError(
            f"{path}: the API refused the batch because the workspace's spend limit is reached "
            f"({exc}). Nothing was submitted for this file, and halfrate does not retry it: "
            "raise the spend limit in the Claude Console (Settings > Limits) or wait until it "
            "resets, then rerun the job."
        )
    hint = _HINTS.get(exc.kind, "nothing was submitted for this file")
    return SubmissionRefusedError(
        f"{path}: the API refused the batch ({exc}); {hint}. Nothing was submitted for this file."
    )


def _ambiguous(record: BatchRecord, candidates: list["MessageBatch"]) -> AmbiguousSubmissionError:
    ids = [b.id for b in candidates]
    listed = ", ".join(f"{b.id} (created {b.created_at.isoformat()})" for b in candidates)
    return AmbiguousSubmissionError(
        f"{record.file.path}: the response to its create was lost, and {len(ids)} batches "
        f"of {record.file.n_requests} requests that no ledger knows were created since: "
        f"{listed}. halfrate will not guess, and sends nothing for this file. Adopt the right "
        f"one with `halfrate adopt <job> {record.file.path} <batch id>` (cancel the others "
        "if they are duplicates), then rerun the job.",
        ids,
    )


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
