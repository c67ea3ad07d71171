"""Submit request files as batches, exactly once.

The Message Batches API has no idempotency key, so a create whose response is lost (timeout,
dropped connection, crash, 5xx after the batch was committed) leaves us not knowing whether we
paid for a batch. The SDK would simply retry, making a second paid batch; `gateway` turns its
retries off for creates and this module decides instead:

1. Before each create, the ledger durably records an `intent` for the file; right after, the
   batch id. A crash in between leaves the intent behind.
2. An intent is never resent blindly. It is first *reconciled*: list the workspace's batches
   created since the intent (minus `clock_skew`, for the difference between our clock and the
   API's), and keep the candidates whose request count equals the file's and whose id no
   ledger knows (this job's, and every job's in the workdir through `known_batch_ids`).
   - exactly one candidate: adopt it (note "reconciled after lost create response");
   - none: list once more after `propagation_delay` (a new batch can take a moment to show),
     and only then clear the intent and create again;
   - several: raise `AmbiguousSubmissionError` naming them, and send nothing.
3. A definite refusal (400/401/403/404/413/422 ...) clears the intent and raises
   `SubmissionRefusedError` naming the file. Any outcome where the server may have created the
   batch (timeouts, connection errors, 429, 5xx, 529) keeps the intent and reconciles at once,
   for a bounded number of rounds with backoff, then raises `SubmissionUnknownError`, which is
   safe to retry: the next run reconciles before sending anything.

Limits of the heuristic: two batches of the same size created in the same minutes by another
process on the same workspace whose ledger we cannot see (another machine, another workdir)
are indistinguishable from ours by (time, count). Then we either stop (several candidates) or,
if only the other one is visible, adopt the wrong batch. A wrong adoption cannot go unnoticed:
`download` checks every custom_id of the results against the file's index and names a batch
whose results are not this file's.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from halfrate.gateway import BatchGateway, RequestFileError, total_requests
from halfrate.ledger import BatchRecord, BatchStatus, Ledger
from halfrate.workspace import JobPaths, job_lock

log = logging.getLogger(__name__)

RECONCILED_NOTE = "reconciled after lost create response"

# Statuses after which the API certainly did not create the batch. 408, 409, 429 and 5xx are
# excluded on purpose: the SDK itself treats them as "try again", so a batch may exist.
REFUSAL_STATUSES = frozenset({400, 401, 402, 403, 404, 405, 413, 415, 422})


class SubmissionError(RuntimeError):
    """Base class of the errors `submit_pending` raises."""


class SubmissionRefusedError(SubmissionError):
    """The API refused a create: nothing was submitted for the file, and its intent is cleared."""


class SubmissionUnknownError(SubmissionError):
    """A create's outcome is still unknown after reconciling; rerunning is safe."""


class AmbiguousSubmissionError(SubmissionError):
    """Several unknown batches could be the lost one; nothing is sent until a person decides."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


@dataclass(frozen=True)
class SubmitPolicy:
    """How patient reconciliation is."""

    clock_skew: timedelta = timedelta(minutes=10)
    """Batches created this long before the intent still count as candidates."""
    propagation_delay: float = 10.0
    """Seconds to wait before the second listing, when the first found nothing."""
    rounds: int = 3
    """Creates with an unknown outcome (or failed listings) tolerated per file and call."""
    backoff: tuple[float, ...] = (2.0, 10.0, 30.0)
    """Seconds to wait before each reconciliation round after a failure."""


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
) -> list[BatchRecord]:
    """Submit every request file of `attempt` (and `purpose`) that has no batch yet.

    Files are sent one at a time under the job lock; a file left with an `intent` by an
    earlier run is reconciled first. Returns the records of those files afterwards (every one
    then has a batch id). `known_batch_ids` lists the batch ids of every ledger in the
    workdir, so another job's batch is never adopted.
    """
    submitter = _Submitter(ledger, paths, gateway, known_batch_ids, policy or SubmitPolicy(), sleep)
    with job_lock(paths):
        for record in ledger.records(attempt=attempt, purpose=purpose):
            if record.status in (None, BatchStatus.intent):
                submitter.submit(record)
        return ledger.records(attempt=attempt, purpose=purpose)


def adopt_batch(
    ledger: Ledger, paths: JobPaths, gateway: BatchGateway, path: str, batch_id: str
) -> BatchRecord:
    """Attach a batch chosen by a person to a file left with an intent (after an ambiguity)."""
    with job_lock(paths):
        record = ledger.record(path)
        if record.status is not BatchStatus.intent:
            raise SubmissionError(
                f"{path}: has no pending intent (status {record.status}); nothing to adopt"
            )
        if batch_id in ledger.known_batch_ids():
            raise SubmissionError(f"batch {batch_id} already belongs to another request file")
        batch = gateway.retrieve(batch_id)
        if total_requests(batch) != record.file.n_requests:
            raise SubmissionError(
                f"batch {batch_id} holds {total_requests(batch)} requests but {path} has "
                f"{record.file.n_requests}: it is not this file's batch"
            )
        ledger.record_batch(path, batch.model_dump(mode="json"), note="adopted by hand")
        return ledger.record(path)


class _Submitter:
    def __init__(
        self,
        ledger: Ledger,
        paths: JobPaths,
        gateway: BatchGateway,
        known_batch_ids: Callable[[], set[str]] | None,
        policy: SubmitPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.ledger = ledger
        self.paths = paths
        self.gateway = gateway
        self.known_batch_ids = known_batch_ids
        self.policy = policy
        self.sleep = sleep

    def submit(self, record: BatchRecord) -> None:
        path = record.file.path
        unknown_rounds = 0  # creates with an unknown outcome, and failed listings
        last_error: BaseException | None = None
        while True:
            if record.status is BatchStatus.intent:
                try:
                    if self._reconcile(record):
                        return
                except _ListingFailed as exc:
                    unknown_rounds += 1
                    last_error = exc.__cause__
                    if unknown_rounds >= self.policy.rounds:
                        raise self._unknown(record, last_error) from last_error
                    self._backoff(unknown_rounds)
                    continue
                self.ledger.clear_intent(path, "no batch found for the intent")
            if unknown_rounds >= self.policy.rounds:
                raise self._unknown(record, last_error) from last_error
            if unknown_rounds:
                self._backoff(unknown_rounds)
            self.ledger.record_intent(path)
            try:
                batch = self.gateway.create_from_file(
                    self.paths.root / path, record.file.body_bytes
                )
            except Exception as exc:
                if not _may_have_created(exc):
                    self.ledger.clear_intent(path, f"create refused: {exc}")
                    raise _refused(path, exc) from exc
                log.warning("%s: create outcome unknown (%s); reconciling", path, _describe(exc))
                unknown_rounds += 1
                last_error = exc
                record = self.ledger.record(path)
                continue
            self.ledger.record_batch(path, batch.model_dump(mode="json"))
            log.info("%s: submitted as batch %s", path, batch.id)
            return

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

    def _candidates(self, record: BatchRecord, since: datetime) -> list[MessageBatch]:
        known = self.ledger.known_batch_ids()
        if self.known_batch_ids is not None:
            known |= self.known_batch_ids()
        try:
            return [
                b
                for b in self.gateway.iter_recent(since)
                if total_requests(b) == record.file.n_requests and b.id not in known
            ]
        except Exception as exc:
            if _is_transient(exc):
                raise _ListingFailed() from exc
            raise

    def _backoff(self, round_: int) -> None:
        delays = self.policy.backoff or (0.0,)
        self.sleep(delays[min(round_ - 1, len(delays) - 1)])

    def _unknown(self, record: BatchRecord, error: BaseException | None) -> SubmissionUnknownError:
        still = self.ledger.record(record.file.path).status is BatchStatus.intent
        state = (
            "its intent is kept, and the next run reconciles before sending anything"
            if still
            else "no batch was found for it, so the next run sends it again"
        )
        return SubmissionUnknownError(
            f"{record.file.path}: could not submit after {self.policy.rounds} tries "
            f"(last error: {_describe(error)}); {state}. It is safe to rerun the job."
        )


class _ListingFailed(Exception):
    """The list endpoint failed transiently while reconciling."""


def _may_have_created(exc: BaseException) -> bool:
    """Whether the server may have created a batch despite this error (when in doubt: yes)."""
    if _caused_by(exc, RequestFileError):
        return False  # raised while reading the body: the request was never complete
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code not in REFUSAL_STATUSES
    return True  # timeouts, dropped connections, unreadable responses, anything unexpected


def _is_transient(exc: BaseException) -> bool:
    """Whether a failed read-only call (list) is worth repeating later."""
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code not in REFUSAL_STATUSES
    return isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError, OSError))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _refused(path: str, exc: BaseException) -> SubmissionError:
    if isinstance(exc, anthropic.APIStatusError):
        hint = {
            413: "the body is over the API's size limit: lower HALFRATE_MAX_BATCH_BYTES and "
            "rebuild the requests",
            401: "the API key was rejected: check ANTHROPIC_API_KEY",
            403: "the API key may not create batches in this workspace",
            400: "fix the request file (see the message) and rebuild the requests",
            422: "fix the request file (see the message) and rebuild the requests",
        }.get(exc.status_code, "nothing was submitted for this file")
        return SubmissionRefusedError(
            f"{path}: the API refused the batch ({exc.status_code} {_api_message(exc)}); "
            f"{hint}. Nothing was submitted for this file."
        )
    return SubmissionRefusedError(f"{path}: {exc}. Nothing was submitted for this file.")


def _ambiguous(record: BatchRecord, candidates: list[MessageBatch]) -> AmbiguousSubmissionError:
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


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "none"
    if isinstance(exc, anthropic.APIStatusError):
        return f"{exc.status_code} {_api_message(exc)}"
    cause = exc.__cause__
    detail = f": {cause!r}" if cause is not None else ""
    return f"{type(exc).__name__}{detail}"


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
