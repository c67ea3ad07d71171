"""Send a request file through the real-time Messages API, as a real-time pseudo-batch.

For `mode: realtime` jobs, and for what a job's deadline leaves (halfrate/finish.py). The file
is the same JSONL a batch would get; its requests go out one call each, `concurrency` at a
time, at full price. The answers are written as the lines a batch's results file would hold
(`{"custom_id", "result": {"type": "succeeded", "message": ...}}`, or `errored`/`canceled`)
into `results/<rt id>.jsonl`, verified against the file's index like a download, so parse,
load, retries and `row_outcomes` treat it as one more batch (its ledger and warehouse `mode`
is 'realtime', and the cost tables price it without the batch discount).

Exactly once, as far as the API allows (halfrate/realtime_log.py): every call is recorded
before it is sent and its answer right after; a request answered is never sent again. The
SDK's own retries are off (`create_message` uses `max_retries=0`): a retry after a timeout may
be a second paid call, so halfrate decides:

- an answer of the API itself that is an error was not charged: 429/529/5xx with the API's
  body are sent again after `retry-after` (every worker pauses: the limit is shared), a few
  times, then the request ends `errored` (retriable: the next attempt sends it again); 400,
  404, 413 end it `errored` with `invalid_request_error` (final, like a batch's); a refused
  key or the spend limit stops everything (`APIError`, actionable);
- no answer (a timeout, a dropped connection, a crash) may have been charged: it is sent again
  once, and the lost call is counted (`possible_duplicate_requests` in the costs). A request
  whose answer is lost twice is not sent a third time: it ends `errored` (retriable).

An answer's `anthropic-ratelimit-*-remaining` of 0 pauses every worker until its reset. The
first request goes alone, so the others can read the prompt cache it writes. A user cancel
stops new calls; what was not answered ends `canceled` (by the user), as in a batch.
"""

import contextvars
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from halfrate.download import RESULT_TYPES, durable_replace, verify_results
from halfrate.errors import APIError, ErrorKind
from halfrate.gateway import BatchGateway, RateLimit
from halfrate.ledger import BatchRecord, Ledger
from halfrate.realtime_log import RealtimeLog
from halfrate.workspace import JobPaths

log = logging.getLogger(__name__)

REALTIME_ID_PREFIX = "rt_"
"""A real-time pseudo-batch's id: `rt_<UTC time>_<random hex>` (the API's are msgbatch_...)."""
MAX_LOST = 2
"""Calls of one request whose answer may be lost before it is given up (sent again once)."""
STOP_KINDS = frozenset({ErrorKind.auth, ErrorKind.spend_limit})
"""Refusals that stop the whole send: no other request can do better."""


@dataclass(frozen=True)
class RealtimePolicy:
    concurrency: int = 4
    busy_tries: int = 6
    """Calls of one request the API may turn away (429, 529, 5xx) before it ends errored."""
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    """Pause after the n-th refusal in a row (at least the answer's retry-after)."""
    max_pause: float = 600.0
    timeout: float | None = None
    """Seconds a call may take; None: as the SDK's (10 min, more for a large max_tokens)."""


@dataclass(frozen=True)
class RealtimeSent:
    """What sending one file in real time amounted to."""

    batch_id: str
    request_file: str
    counts: dict[str, int]
    calls: int
    """Calls this run made (0: every answer was already recorded)."""
    lost_calls: int
    """Requests of this pseudo-batch with a call whose answer was lost (possibly paid twice)."""


def new_realtime_id() -> str:
    return f"{REALTIME_ID_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(6)}"


def send_file(
    ledger: Ledger,
    paths: JobPaths,
    gateway: BatchGateway,
    record: BatchRecord,
    policy: RealtimePolicy,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RealtimeSent:
    """Send every unanswered request of `record`'s file and write its verified results file."""
    if record.batch_id is None:
        rt_id = new_realtime_id()
        ledger.record_realtime(record.file.path, rt_id, record.file.n_requests)
    else:
        rt_id = record.batch_id
    calls = RealtimeLog(ledger)
    if lost := calls.settle_interrupted(rt_id):
        log.warning("%s: %d calls lost their answer when the run stopped", rt_id, lost)
    sender = _Sender(ledger, calls, gateway, rt_id, policy, _Pacer(sleep, monotonic))
    sender.run(_requests(paths, record.file.path))
    return _finish(ledger, paths, calls, record.file.path, rt_id, sender.calls)


def _requests(paths: JobPaths, request_file: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with (paths.root / request_file).open("rb") as fh:
        for line in fh:
            request = orjson.loads(line)
            yield request["custom_id"], request["params"]


class _Pacer:
    """One pause every worker honours: a retry-after, or a rate limit spent until its reset."""

    def __init__(self, sleep: Callable[[float], None], monotonic: Callable[[], float]) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._not_before = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self._monotonic() + seconds)

    def note(self, limit: RateLimit, max_pause: float) -> None:
        if limit.remaining == 0 and limit.reset_at is not None:
            wait_s = (limit.reset_at - datetime.now(UTC)).total_seconds()
            self.pause(min(max(wait_s, 0.0), max_pause))

    def wait(self) -> None:
        while (delay := self._not_before - self._monotonic()) > 0:
            self._sleep(delay)


class _Sender:
    def __init__(
        self,
        ledger: Ledger,
        calls: RealtimeLog,
        gateway: BatchGateway,
        rt_id: str,
        policy: RealtimePolicy,
        pacer: _Pacer,
    ) -> None:
        self.ledger, self.log, self.gateway, self.rt_id = ledger, calls, gateway, rt_id
        self.policy, self.pacer = policy, pacer
        self.states = calls.states(rt_id)
        self.calls = 0
        self.stopping = False
        """A user cancel, or a refusal that stops everything: no new calls."""
        self._count = threading.Lock()

    def run(self, requests: Iterator[tuple[str, dict[str, Any]]]) -> None:
        todo = ((c, p) for c, p in requests if self._pending(c))
        first = next(todo, None)
        if first is None:
            return
        self._one(*first)  # alone: it writes the prompt cache the others read
        width = max(1, self.policy.concurrency)
        with ThreadPoolExecutor(width, thread_name_prefix="realtime") as pool:
            flying: set[Future[None]] = set()
            for custom_id, params in todo:
                if self.stopping:
                    break
                # in the caller's context: a worker's warnings reach the flow run's logs
                call = contextvars.copy_context().run
                flying.add(pool.submit(call, self._one, custom_id, params))
                if len(flying) >= 2 * width:  # memory: a few requests read ahead, no more
                    done, flying = wait(flying, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()  # a stop (refused key, spend limit) ends the send
            for future in flying:
                future.result()

    def _pending(self, custom_id: str) -> bool:
        state = self.states.get(custom_id)
        return state is None or state.state != "answered"

    def _one(self, custom_id: str, params: dict[str, Any]) -> None:
        """Get one request answered: its calls, their refusals and lost answers."""
        state = self.states.get(custom_id)
        lost = state.lost if state else 0
        busy = 0
        while lost < MAX_LOST:
            self.pacer.wait()
            if self.stopping or self.ledger.cancel_requested():
                self.stopping = True
                return
            try:
                return self._call(custom_id, params)
            except APIError as exc:
                if exc.outcome_unknown:  # it may have been charged: sent again, once
                    self.log.lost(self.rt_id, custom_id)
                    lost += 1
                    log.warning("%s: no answer (%s); lost calls: %d", custom_id, exc, lost)
                    continue
                busy += 1
                if not self._again_after(custom_id, exc, busy):
                    return
        self._errored(custom_id, "api_error", "no answer twice; not sent again")

    def _call(self, custom_id: str, params: dict[str, Any]) -> None:
        """One call, recorded before it is sent; its answer recorded as its results line."""
        self.log.sending(self.rt_id, custom_id)
        with self._count:
            self.calls += 1
        timeout = self.policy.timeout or _timeout(params)
        answer = self.gateway.create_message(params, timeout=timeout)
        self.pacer.note(answer.rate_limit, self.policy.max_pause)
        line = _line(custom_id, {"type": "succeeded", "message": answer.message})
        self.log.answered(self.rt_id, custom_id, line)

    def _again_after(self, custom_id: str, exc: APIError, busy: int) -> bool:
        """An answer of the API that is an error (not charged): pause and call again, or end
        the request errored, or stop everything (a refused key, the spend limit)."""
        self.log.refused(self.rt_id, custom_id)
        if exc.kind in STOP_KINDS:
            self.stopping = True
            raise exc
        if exc.kind is not ErrorKind.busy:
            self._errored(custom_id, "invalid_request_error", str(exc))
            return False
        if busy >= self.policy.busy_tries:
            self._errored(custom_id, exc.error_type or "api_error", str(exc))
            return False
        self.pacer.pause(self._backoff(busy, exc.retry_after))
        return True

    def _backoff(self, busy: int, retry_after: float | None) -> float:
        delays = self.policy.backoff or (1.0,)
        delay = delays[min(busy - 1, len(delays) - 1)]
        return min(max(delay, retry_after or 0.0), self.policy.max_pause)

    def _errored(self, custom_id: str, error_type: str, message: str) -> None:
        error = {"type": "error", "error": {"type": error_type, "message": message}}
        self.log.answered(
            self.rt_id, custom_id, _line(custom_id, {"type": "errored", "error": error})
        )


def _line(custom_id: str, result: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "result": result})


def _timeout(params: dict[str, Any]) -> float:
    """As the SDK's: 10 minutes, longer for a large max_tokens (up to an hour at 128k)."""
    return max(600.0, 3600.0 * int(params.get("max_tokens") or 0) / 128_000)


def _finish(
    ledger: Ledger, paths: JobPaths, calls: RealtimeLog, request_file: str, rt_id: str, made: int
) -> RealtimeSent:
    """Canceled lines for what a user cancel left, then the verified results file."""
    states = calls.states(rt_id)
    index = paths.index_file(request_file)
    if ledger.cancel_requested():
        for custom_id, _ in _requests(paths, request_file):
            if custom_id not in states or states[custom_id].state != "answered":
                calls.answered(rt_id, custom_id, _line(custom_id, {"type": "canceled"}))
        ledger.request_cancel([rt_id])
    final = paths.results_file(rt_id)
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    with part.open("wb") as fh:
        for line in calls.result_lines(rt_id):
            fh.write(line)
            counts[orjson.loads(line)["result"]["type"]] += 1
    totals = {k: counts[k] for k in RESULT_TYPES} | {"processing": 0}
    check = verify_results(part, index, totals)
    if not check.ok:  # some requests have no answer yet (a stop): the next run sends them
        part.unlink()
        raise RealtimeIncompleteError(
            f"{request_file} ({rt_id}): {'; '.join(check.problems)}; rerun the job to send "
            "the rest (answered requests are not sent again)"
        )
    durable_replace(part, final)
    ledger.end_realtime(rt_id, totals)
    lost = sum(1 for s in calls.states(rt_id).values() if s.lost)
    return RealtimeSent(rt_id, request_file, totals, made, lost)


class RealtimeIncompleteError(RuntimeError):
    """A real-time pseudo-batch stopped before every request had an answer (safe to rerun)."""
