"""The one gateway between halfrate and the Message Batches API (a thin layer over the SDK).

It holds no decisions about jobs: it streams a request file as a create body, retrieves,
lists, cancels and downloads. What to do when a call fails lives in `submit`, `progress`
and `download`.

Two SDK 2.10 behaviours shape it (shared/reference/anthropic-batches.md sections 1 and 9):
- The API has no idempotency key, and the SDK retries a create whose response was lost,
  which can make a second paid batch. `create_from_file` therefore sends the create with
  `max_retries=0`; `submit` reconciles with the list endpoint instead.
- `batches.create(requests=[...])` builds the whole body in Python (~1.4 GiB per 256 MB batch).
  `create_from_file` streams the pre-built JSONL file as the body instead, in 1 MiB blocks,
  with an exact Content-Length (perf-baseline.md section B).
`create_message` (one real-time Messages call) is never retried here either: a call whose
answer was lost may have been paid for, so `halfrate.realtime` decides (it records each call
before it is sent, and sends a lost one again only once, counting the possible double charge).
Status calls keep the SDK's retries (429, 5xx, connection errors) and also retry a 404 that
arrives within a minute of a batch's creation (anthropics/anthropic-sdk-python#1432).

No SDK exception leaves this module: each one carries its request, API key header included,
and Prefect pickles a failed run's exception to disk. `_call` converts every failure of an
SDK call (and of the results stream) into `halfrate.errors.APIError`, plain data with no
cause or context chained, so nothing of the SDK can be reached from what a task raises.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
import orjson

from halfrate.errors import ActionableError, APIError, ErrorKind, classify
from halfrate.progress_hooks import SILENT, StepProgress

if TYPE_CHECKING:  # importing settings (pydantic-settings) costs the client ~3 MiB
    import anthropic
    from anthropic.types.messages import MessageBatch

    from halfrate.settings import Settings

# The SDK is imported where a client is made, not with this module: `import anthropic` costs
# ~1 CPU-second, and a run's flow (or `halfrate status`) imports this module long before (or
# without ever) calling the API.

log = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20
BODY_PREFIX = b'{"requests":['
BODY_SUFFIX = b"]}"
FRESH_BATCH_GRACE_S = 60.0
"""A 404 for a batch younger than this is a propagation delay, not a missing batch."""
PRODUCTION_HOST = "api.anthropic.com"
KEY_CHECK_TTL_S = 60.0
"""How long a key the API accepted counts as checked (for this gateway)."""

COUNT_TOKENS_KEYS = frozenset(
    {"messages", "model", "system", "tools", "tool_choice", "thinking", "output_config",
     "cache_control"}
)  # fmt: skip

_T = TypeVar("_T")


RATE_LIMIT_PREFIX = "anthropic-ratelimit-"
RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


@dataclass(frozen=True)
class RateLimit:
    """What an answer's `anthropic-ratelimit-*` headers say of the tightest limit."""

    remaining: int | None = None
    reset_at: datetime | None = None
    """When that limit is replenished (RFC 3339 in the header)."""


@dataclass(frozen=True)
class MessageAnswer:
    """A real-time Messages call's answer, as plain data: the Message JSON and the limits."""

    message: dict[str, Any]
    rate_limit: RateLimit


class MissingAPIKeyError(RuntimeError, ActionableError):
    """No API key was configured."""


class RequestFileError(ValueError):
    """A request file is not a well-formed JSONL body (checked before anything is sent)."""


def make_client(settings: "Settings", *, max_retries: int = 2) -> "anthropic.Anthropic":
    """The SDK client for these settings; the key is read here, at run time, and never logged."""
    import anthropic

    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
    if not key.strip():
        raise MissingAPIKeyError(
            "ANTHROPIC_API_KEY is not set: export it, or run `halfrate demo` which starts the "
            "local emulator"
        )
    if settings.anthropic_base_url:
        return anthropic.Anthropic(
            api_key=key, base_url=settings.anthropic_base_url, max_retries=max_retries
        )
    return anthropic.Anthropic(api_key=key, max_retries=max_retries)


_SHARED: dict[tuple[str, str | None], "BatchGateway"] = {}


def shared_gateway(settings: "Settings") -> "BatchGateway":
    """This process's gateway for the settings' key and endpoint, made once.

    A run's steps and polls then share one SDK client: its connection pool (no new TCP and TLS
    handshake per step and per poll), and what the gateway learned of its batches (when each
    was created, the ended batch a poll just fetched, which the download reuses).
    """
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
    ident = (hashlib.sha256(key.encode()).hexdigest(), settings.anthropic_base_url)
    gateway = _SHARED.get(ident)
    if gateway is None:
        gateway = _SHARED[ident] = BatchGateway(make_client(settings))
    return gateway


def body_size(file_size: int) -> int:
    """Bytes of the create body built from a request file of `file_size` bytes."""
    return len(BODY_PREFIX) + (file_size - 1) + len(BODY_SUFFIX)


class RequestBody:
    """A request file as a create body: `{"requests":[` + lines joined by `,` + `]}`.

    Re-iterable (each iteration reopens the file) and streamed in blocks: memory stays at
    one block whatever the file size. The file must end with LF and hold no blank line.
    """

    def __init__(self, path: Path, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.block_size = block_size
        self.file_size = path.stat().st_size
        self.size = body_size(self.file_size)

    def __iter__(self) -> Iterator[bytes]:
        yield BODY_PREFIX
        remaining = self.file_size
        previous_ended_line = True  # a file starting with LF starts with a blank line
        with self.path.open("rb") as fh:
            while remaining > 0:
                block = fh.read(min(self.block_size, remaining))
                if not block:
                    raise RequestFileError(f"{self.path}: file shrank while it was being sent")
                remaining -= len(block)
                if b"\n\n" in block or (previous_ended_line and block[:1] == b"\n"):
                    raise RequestFileError(
                        f"{self.path}: blank line in a request file; rebuild the requests"
                    )
                previous_ended_line = block[-1:] == b"\n"
                if remaining == 0:
                    block = block[:-1]  # the final LF, checked in check_request_file
                yield block.replace(b"\n", b",")
        yield BODY_SUFFIX


def check_request_file(path: Path, body_bytes: int) -> None:
    """Cheap checks before a request file is sent: it exists, is unchanged in size, ends in LF."""
    if not path.is_file():
        raise RequestFileError(f"{path}: request file is missing; rebuild the requests")
    size = path.stat().st_size
    if size < 2:
        raise RequestFileError(f"{path}: request file is empty; rebuild the requests")
    if body_size(size) != body_bytes:
        raise RequestFileError(
            f"{path}: the file is {size} bytes, which makes a {body_size(size)}-byte body, but "
            f"the ledger registered a {body_bytes}-byte body: the file changed after it was "
            "built; rebuild the requests"
        )
    with path.open("rb") as fh:
        first = fh.read(1)
        fh.seek(-1, 2)
        last = fh.read(1)
    if first != b"{" or last != b"\n":
        raise RequestFileError(
            f"{path}: not a JSONL request file (it must start with '{{' and end with a newline)"
        )


def total_requests(batch: "MessageBatch") -> int:
    """How many requests a batch holds (its request counts always sum to that)."""
    c = batch.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


class BatchGateway:
    """create / retrieve / list / cancel / download over one SDK client."""

    def __init__(
        self,
        client: "anthropic.Anthropic",
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        fresh_grace_s: float = FRESH_BATCH_GRACE_S,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self.client = client
        self.block_size = block_size
        self._sleep = sleep
        self._monotonic = monotonic
        self._fresh_grace_s = fresh_grace_s
        self._born: dict[str, float] = {}  # batch id -> monotonic time this process learned it
        self._ended: dict[str, MessageBatch] = {}  # batch id -> its last retrieve, once ended
        self._key_accepted_at: float | None = None

    # -- create ---------------------------------------------------------------------------

    def create_from_file(self, path: Path, body_bytes: int) -> "MessageBatch":
        """Stream a request file as one create call. Never retried here: see `submit`."""
        from anthropic.types.messages import MessageBatch

        check_request_file(path, body_bytes)
        body = RequestBody(path, self.block_size)
        batch = _call(
            "create",
            lambda: self.client.post(
                "/v1/messages/batches",
                content=body,
                cast_to=MessageBatch,
                options={
                    "max_retries": 0,
                    "headers": {
                        "Content-Type": "application/json",
                        "Content-Length": str(body.size),
                    },
                },
            ),
        )
        self._born[batch.id] = self._monotonic()
        return batch

    def create_message(self, params: Mapping[str, Any], *, timeout: float) -> MessageAnswer:
        """One `POST /v1/messages` with a request line's params. Never retried here: see
        `halfrate.realtime`. An answer that is not a Message raises `APIError` (unexpected)."""
        response = _call(
            "messages",
            lambda: self.client.post(
                "/v1/messages",
                body=dict(params),
                cast_to=httpx2.Response,
                options={"max_retries": 0, "timeout": timeout},
            ),
        )
        try:
            message = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "message":
            raise APIError(
                ErrorKind.unexpected,
                "messages",
                f"HTTP {response.status_code} answer is not a Message: "
                f"{_first_line(response.text)!r}",
                request_id=response.headers.get("request-id"),
            )
        return MessageAnswer(message, rate_limit(response.headers))

    # -- status ---------------------------------------------------------------------------

    def retrieve(
        self, batch_id: str, *, created_at: datetime | str | None = None
    ) -> "MessageBatch":
        """The batch's current state (a 404 within a minute of creation is retried)."""
        batch = self._retry_fresh_404(
            batch_id,
            created_at,
            lambda: _call("retrieve", lambda: self.client.messages.batches.retrieve(batch_id)),
        )
        if batch.processing_status == "ended":
            self._ended[batch_id] = batch
        return batch

    def take_ended(self, batch_id: str) -> "MessageBatch | None":
        """The ended batch a retrieve of this gateway returned, once (then None).

        An ended batch no longer changes (only `archived_at` is set 29 days after creation,
        and then its results answer 404, which the download handles): the download that
        follows the poll which saw it end needs no second retrieve.
        """
        return self._ended.pop(batch_id, None)

    def iter_recent(self, since: datetime, *, page_size: int = 1000) -> Iterator["MessageBatch"]:
        """Batches of the workspace created at or after `since`, newest first."""
        page = _call("list", lambda: self.client.messages.batches.list(limit=page_size))
        while True:
            for batch in page.data:
                if batch.created_at < since:
                    return
                yield batch
            if not page.has_next_page():
                return
            page = _call("list", page.get_next_page)

    def check_key(self) -> None:
        """One cheap authenticated call (list one batch): raises APIError if the key is refused.

        Once accepted, the key is not checked again by this gateway for a minute: the CLI's
        checks before a run and the run's preflight then make one call, not two.
        """
        accepted = self._key_accepted_at
        if accepted is not None and self._monotonic() - accepted < KEY_CHECK_TTL_S:
            return
        _call("list", lambda: self.client.messages.batches.list(limit=1))
        self._key_accepted_at = self._monotonic()

    def cancel(self, batch_id: str) -> "MessageBatch":
        """Ask the API to cancel a batch (it goes to `canceling`, then `ended`)."""
        return _call("cancel", lambda: self.client.messages.batches.cancel(batch_id))

    def note_fresh(self, batch_id: str) -> None:
        """Treat early 404s of this batch as propagation delay (e.g. just adopted)."""
        self._born.setdefault(batch_id, self._monotonic())

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of one batch request's `params` (free, but rate limited).

        Keys that count_tokens does not take (max_tokens, metadata, ...) are dropped, so a
        request line's params can be passed as they are.
        """
        from anthropic.types import MessageTokensCount

        body = {k: v for k, v in params.items() if k in COUNT_TOKENS_KEYS}
        counted = _call(
            "count_tokens",
            lambda: self.client.post(
                "/v1/messages/count_tokens", body=body, cast_to=MessageTokensCount
            ),
        )
        return counted.input_tokens

    # -- results --------------------------------------------------------------------------

    def download_results(
        self,
        batch_id: str,
        dest: Path,
        *,
        batch: "MessageBatch | None" = None,
        progress: StepProgress = SILENT,
    ) -> int:
        """Stream a batch's raw results into `dest` unchanged; returns the bytes written.

        `progress` is advanced by each network chunk's bytes (its total set from the
        response's Content-Length, when it has one).

        `batch` is a fresh retrieve of it (fetched here when not given). Its `results_url` is
        followed only when it points at the configured base URL (or the client talks to the
        production API); otherwise its path is joined to the base URL, so an emulator or a
        proxy never sends the key to api.anthropic.com. A dropped connection raises an
        `APIError` of kind `no_response`: the caller redoes it.
        """
        if batch is None:
            batch = self.retrieve(batch_id)
        if not batch.results_url:
            raise RuntimeError(
                f"batch {batch_id} has no results_url (processing_status "
                f"{batch.processing_status!r}): it has not ended yet"
            )
        url = self._results_url(batch.results_url)
        created_at = batch.created_at

        def open_stream() -> httpx2.Response:
            return _call(
                "results",
                lambda: self.client.get(
                    url,
                    cast_to=httpx2.Response,
                    options={"headers": {"Accept": "application/binary"}},
                    stream=True,
                ),
            )

        response = self._retry_fresh_404(batch_id, created_at, open_stream)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with dest.open("wb") as fh:
                return _call("results", lambda: _copy(response, fh, progress))
        finally:
            response.close()

    def _results_url(self, results_url: str) -> str:
        target = httpx2.URL(results_url)
        if not target.is_absolute_url:
            return results_url
        base = httpx2.URL(str(self.client.base_url))
        same_origin = (target.scheme, target.host, target.port) == (
            base.scheme,
            base.host,
            base.port,
        )
        if same_origin or base.host == PRODUCTION_HOST:
            return results_url
        log.warning(
            "results_url %s is not on the configured base URL %s; fetching its path from the "
            "base URL instead",
            results_url,
            base,
        )
        path = target.raw_path.decode("ascii")
        base_path = base.raw_path.decode("ascii").rstrip("/")
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path) :]
        return path

    # -- helpers --------------------------------------------------------------------------

    def _retry_fresh_404(
        self, batch_id: str, created_at: datetime | str | None, call: Callable[[], _T]
    ) -> _T:
        age: float | None = None
        slept = 0.0
        delay = 0.5
        while True:
            try:
                return call()
            except APIError as exc:
                if exc.kind is not ErrorKind.not_found:
                    raise
                if age is None:
                    age = self._age_s(batch_id, created_at)
                if age is None or age + slept + delay > self._fresh_grace_s:
                    raise
                log.info(
                    "batch %s: 404 %.0f s after creation, retrying in %.1f s",
                    batch_id,
                    age + slept,
                    delay,
                )
                self._sleep(delay)
                slept += delay
                delay = min(delay * 2, 8.0)

    def _age_s(self, batch_id: str, created_at: datetime | str | None) -> float | None:
        ages: list[float] = []
        born = self._born.get(batch_id)
        if born is not None:
            ages.append(self._monotonic() - born)
        if isinstance(created_at, str):
            created_at = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if created_at is not None:
            ages.append(max(0.0, (datetime.now(UTC) - created_at).total_seconds()))
        return min(ages) if ages else None


def _copy(response: httpx2.Response, fh: Any, progress: StepProgress) -> int:
    length = response.headers.get("content-length", "")
    if length.isdigit():
        progress.set_total(int(length))
    written = 0
    for chunk in response.iter_bytes():
        fh.write(chunk)
        written += len(chunk)
        progress.advance(len(chunk))
    return written


def _call(endpoint: str, call: Callable[[], _T]) -> _T:
    """Run one SDK call; any failure leaves as an `APIError` with nothing of the SDK attached."""
    try:
        return call()
    except Exception as exc:
        if not _is_sdk_error(exc):
            raise
        error: Exception = _own_cause(exc) or to_api_error(endpoint, exc)
    raise error  # outside the except block: no __context__ links back to the SDK exception


def _is_sdk_error(exc: Exception) -> bool:
    import anthropic

    return isinstance(exc, anthropic.AnthropicError | httpx2.HTTPError)


def _own_cause(exc: BaseException) -> RequestFileError | None:
    """A RequestFileError our body iterator raised, which the SDK wrapped: nothing was sent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RequestFileError):
            return RequestFileError(str(current))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def to_api_error(endpoint: str, exc: BaseException) -> APIError:
    """The plain-data `APIError` for an SDK (or httpx2) exception."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(endpoint, exc)
    if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
        return APIError(ErrorKind.no_response, endpoint, f"timed out ({type(exc).__name__})")
    if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
        detail = _first_line(str(exc)) or "no response"
        return APIError(ErrorKind.no_response, endpoint, f"{type(exc).__name__}: {detail}")
    detail = _first_line(str(exc))
    return APIError(ErrorKind.unexpected, endpoint, f"{type(exc).__name__}: {detail}")


def _status_error(endpoint: str, exc: "anthropic.APIStatusError") -> APIError:
    """An HTTP error answer: the API's error body when there is one, else the first line."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    error_type = _text(error.get("type"))
    message = _text(error.get("message")) if error_type else None
    code = _text(exc.error_code) if error_type else None
    if message is None:
        raw = exc.body if isinstance(exc.body, str) else ""
        message = f"HTTP {exc.status_code} without an API error body: {_first_line(raw)!r}"
    return APIError(
        classify(exc.status_code, error_type, code, message),
        endpoint,
        message,
        status=exc.status_code,
        error_type=error_type,
        request_id=_text(exc.request_id),
        error_code=code,
        retry_after=_retry_after(exc.response.headers),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def rate_limit(headers: Mapping[str, str]) -> RateLimit:
    """The tightest of the `anthropic-ratelimit-<limit>-remaining` / `-reset` pairs."""
    tightest = RateLimit()
    for name in RATE_LIMITS:
        try:
            remaining = int(headers.get(f"{RATE_LIMIT_PREFIX}{name}-remaining", ""))
        except ValueError:
            continue
        if tightest.remaining is not None and remaining >= tightest.remaining:
            continue
        reset = headers.get(f"{RATE_LIMIT_PREFIX}{name}-reset", "")
        try:
            reset_at: datetime | None = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            reset_at = None
        tightest = RateLimit(remaining, reset_at)
    return tightest


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value >= 0:
            return value / scale
    return None
