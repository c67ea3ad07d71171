"""The one gateway between halfrate and the Message Batches API (a thin layer over the SDK).

It holds no decisions about jobs: it streams a request file as a create body, retrieves,
lists, cancels and downloads. What to do when a call fails lives in `submit`, `progress`
and `download`. Its parts: the create body and request-file checks (`halfrate.request_body`),
SDK errors as plain data (`halfrate.api_errors`), rate-limit headers (`halfrate.rate_limits`),
the 404s of a fresh batch (`halfrate.fresh_batches`), the results download
(`halfrate.results_stream`).

Two SDK 2.10 behaviours shape it (shared/reference/anthropic-batches.md sections 1 and 9):
- The API has no idempotency key, and the SDK retries a create whose response was lost,
  which can make a second paid batch. `create_from_file` therefore sends the create with
  `max_retries=0`; `submit` reconciles with the list endpoint instead.
- `batches.create(requests=[...])` builds the whole body in Python: `create_from_file`
  streams the request file instead (`halfrate.request_body`).
`create_message` (one real-time Messages call) is never retried here either: a call whose
answer was lost may have been paid for, so `halfrate.realtime` decides (it records each call
before it is sent, and sends a lost one again only once, counting the possible double charge).
Status calls keep the SDK's retries (429, 5xx, connection errors) and also retry a 404 that
arrives within a minute of a batch's creation (anthropics/anthropic-sdk-python#1432;
`halfrate.fresh_batches`).

No SDK exception leaves this module: every SDK call goes through `api_errors.call_api`.
"""

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import orjson

from halfrate.api_errors import call_api, first_line, to_api_error
from halfrate.errors import ActionableError, APIError, ErrorKind
from halfrate.fresh_batches import FRESH_BATCH_GRACE_S, FreshBatches
from halfrate.progress_hooks import SILENT, StepProgress
from halfrate.rate_limits import MessageAnswer, RateLimit, rate_limit
from halfrate.request_body import (
    BLOCK_SIZE,
    RequestBody,
    RequestFileError,
    body_size,
    check_request_file,
)
from halfrate.results_stream import results_url, write_results

if TYPE_CHECKING:  # importing settings (pydantic-settings) costs the client ~3 MiB
    import anthropic
    from anthropic.types.messages import MessageBatch

    from halfrate.settings import Settings

# The SDK is imported where a client is made, not with this module: `import anthropic` costs
# ~1 CPU-second, and a run's flow (or `halfrate status`) imports this module long before (or
# without ever) calling the API.

__all__ = [  # names other modules import from here (some live in the modules above)
    "BLOCK_SIZE",
    "APIError",
    "BatchGateway",
    "ErrorKind",
    "MessageAnswer",
    "MissingAPIKeyError",
    "RateLimit",
    "RequestBody",
    "RequestFileError",
    "body_size",
    "check_request_file",
    "make_client",
    "rate_limit",
    "shared_gateway",
    "to_api_error",
    "total_requests",
]

KEY_CHECK_TTL_S = 60.0
"""How long a key the API accepted counts as checked (for this gateway)."""

COUNT_TOKENS_KEYS = frozenset(
    {"messages", "model", "system", "tools", "tool_choice", "thinking", "output_config",
     "cache_control"}
)  # fmt: skip


class MissingAPIKeyError(RuntimeError, ActionableError):
    """No API key was configured."""


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
        self._fresh = FreshBatches(sleep=sleep, monotonic=monotonic, grace_s=fresh_grace_s)
        self._ended: dict[str, MessageBatch] = {}  # batch id -> its last retrieve, once ended
        self._key_accepted_at: float | None = None

    # -- create ---------------------------------------------------------------------------

    def create_from_file(self, path: Path, body_bytes: int) -> "MessageBatch":
        """Stream a request file as one create call. Never retried here: see `submit`."""
        from anthropic.types.messages import MessageBatch

        check_request_file(path, body_bytes)
        body = RequestBody(path, self.block_size)
        batch = call_api(
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
        self._fresh.created(batch.id)
        return batch

    def create_message(self, params: Mapping[str, Any], *, timeout: float) -> MessageAnswer:
        """One `POST /v1/messages` with a request line's params. Never retried here: see
        `halfrate.realtime`. An answer that is not a Message raises `APIError` (unexpected)."""
        response = call_api(
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
                f"{first_line(response.text)!r}",
                request_id=response.headers.get("request-id"),
            )
        return MessageAnswer(message, rate_limit(response.headers))

    # -- status ---------------------------------------------------------------------------

    def retrieve(
        self, batch_id: str, *, created_at: datetime | str | None = None
    ) -> "MessageBatch":
        """The batch's current state (a 404 within a minute of creation is retried)."""
        batch = self._fresh.retry_404(
            batch_id,
            created_at,
            lambda: call_api("retrieve", lambda: self.client.messages.batches.retrieve(batch_id)),
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
        page = call_api("list", lambda: self.client.messages.batches.list(limit=page_size))
        while True:
            for batch in page.data:
                if batch.created_at < since:
                    return
                yield batch
            if not page.has_next_page():
                return
            page = call_api("list", page.get_next_page)

    def check_key(self) -> None:
        """One cheap authenticated call (list one batch): raises APIError if the key is refused.

        Once accepted, the key is not checked again by this gateway for a minute: the CLI's
        checks before a run and the run's preflight then make one call, not two.
        """
        accepted = self._key_accepted_at
        if accepted is not None and self._monotonic() - accepted < KEY_CHECK_TTL_S:
            return
        call_api("list", lambda: self.client.messages.batches.list(limit=1))
        self._key_accepted_at = self._monotonic()

    def cancel(self, batch_id: str) -> "MessageBatch":
        """Ask the API to cancel a batch (it goes to `canceling`, then `ended`)."""
        return call_api("cancel", lambda: self.client.messages.batches.cancel(batch_id))

    def note_fresh(self, batch_id: str) -> None:
        """Treat early 404s of this batch as propagation delay (e.g. just adopted)."""
        self._fresh.noted(batch_id)

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of one batch request's `params` (free, but rate limited).

        Keys that count_tokens does not take (max_tokens, metadata, ...) are dropped, so a
        request line's params can be passed as they are.
        """
        from anthropic.types import MessageTokensCount

        body = {k: v for k, v in params.items() if k in COUNT_TOKENS_KEYS}
        counted = call_api(
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
        production API); otherwise its path is joined to the base URL (`results_stream`), so
        an emulator or a proxy never sends the key to api.anthropic.com. A dropped connection
        raises an `APIError` of kind `no_response`: the caller redoes it.
        """
        if batch is None:
            batch = self.retrieve(batch_id)
        if not batch.results_url:
            raise RuntimeError(
                f"batch {batch_id} has no results_url (processing_status "
                f"{batch.processing_status!r}): it has not ended yet"
            )
        url = results_url(batch.results_url, str(self.client.base_url))

        def open_stream() -> httpx2.Response:
            return call_api(
                "results",
                lambda: self.client.get(
                    url,
                    cast_to=httpx2.Response,
                    options={"headers": {"Accept": "application/binary"}},
                    stream=True,
                ),
            )

        response = self._fresh.retry_404(batch_id, batch.created_at, open_stream)
        return write_results(response, dest, progress)
