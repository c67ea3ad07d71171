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
Status calls keep the SDK's retries (429, 5xx, connection errors) and also retry a 404 that
arrives within a minute of a batch's creation (anthropics/anthropic-sdk-python#1432).
"""

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anthropic
import httpx2
from anthropic.types import MessageTokensCount
from anthropic.types.messages import MessageBatch

if TYPE_CHECKING:  # importing settings (pydantic-settings) costs the client ~3 MiB
    from halfrate.settings import Settings

log = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20
BODY_PREFIX = b'{"requests":['
BODY_SUFFIX = b"]}"
FRESH_BATCH_GRACE_S = 60.0
"""A 404 for a batch younger than this is a propagation delay, not a missing batch."""
PRODUCTION_HOST = "api.anthropic.com"

COUNT_TOKENS_KEYS = frozenset(
    {"messages", "model", "system", "tools", "tool_choice", "thinking", "output_config",
     "cache_control"}
)  # fmt: skip

_T = TypeVar("_T")


class MissingAPIKeyError(RuntimeError):
    """No API key was configured."""


class RequestFileError(ValueError):
    """A request file is not a well-formed JSONL body (checked before anything is sent)."""


def make_client(settings: "Settings", *, max_retries: int = 2) -> anthropic.Anthropic:
    """The SDK client for these settings; the key is read here, at run time, and never logged."""
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


def total_requests(batch: MessageBatch) -> int:
    """How many requests a batch holds (its request counts always sum to that)."""
    c = batch.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


class BatchGateway:
    """create / retrieve / list / cancel / download over one SDK client."""

    def __init__(
        self,
        client: anthropic.Anthropic,
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

    # -- create ---------------------------------------------------------------------------

    def create_from_file(self, path: Path, body_bytes: int) -> MessageBatch:
        """Stream a request file as one create call. Never retried here: see `submit`."""
        check_request_file(path, body_bytes)
        body = RequestBody(path, self.block_size)
        batch = self.client.post(
            "/v1/messages/batches",
            content=body,
            cast_to=MessageBatch,
            options={
                "max_retries": 0,
                "headers": {"Content-Type": "application/json", "Content-Length": str(body.size)},
            },
        )
        self._born[batch.id] = self._monotonic()
        return batch

    # -- status ---------------------------------------------------------------------------

    def retrieve(self, batch_id: str, *, created_at: datetime | str | None = None) -> MessageBatch:
        """The batch's current state (a 404 within a minute of creation is retried)."""
        return self._retry_fresh_404(
            batch_id, created_at, lambda: self.client.messages.batches.retrieve(batch_id)
        )

    def iter_recent(self, since: datetime, *, page_size: int = 1000) -> Iterator[MessageBatch]:
        """Batches of the workspace created at or after `since`, newest first."""
        page = self.client.messages.batches.list(limit=page_size)
        while True:
            for batch in page.data:
                if batch.created_at < since:
                    return
                yield batch
            if not page.has_next_page():
                return
            page = page.get_next_page()

    def cancel(self, batch_id: str) -> MessageBatch:
        """Ask the API to cancel a batch (it goes to `canceling`, then `ended`)."""
        return self.client.messages.batches.cancel(batch_id)

    def note_fresh(self, batch_id: str) -> None:
        """Treat early 404s of this batch as propagation delay (e.g. just adopted)."""
        self._born.setdefault(batch_id, self._monotonic())

    def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of one batch request's `params` (free, but rate limited).

        Keys that count_tokens does not take (max_tokens, metadata, ...) are dropped, so a
        request line's params can be passed as they are.
        """
        body = {k: v for k, v in params.items() if k in COUNT_TOKENS_KEYS}
        counted = self.client.post(
            "/v1/messages/count_tokens", body=body, cast_to=MessageTokensCount
        )
        return counted.input_tokens

    # -- results --------------------------------------------------------------------------

    def download_results(
        self, batch_id: str, dest: Path, *, batch: MessageBatch | None = None
    ) -> int:
        """Stream a batch's raw results into `dest` unchanged; returns the bytes written.

        `batch` is a fresh retrieve of it (fetched here when not given). Its `results_url` is
        followed only when it points at the configured base URL (or the client talks to the
        production API); otherwise its path is joined to the base URL, so an emulator or a
        proxy never sends the key to api.anthropic.com. A dropped connection raises
        `httpx2.TransportError` (or `anthropic.APIConnectionError`): the caller redoes it.
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
            return self.client.get(
                url,
                cast_to=httpx2.Response,
                options={"headers": {"Accept": "application/binary"}},
                stream=True,
            )

        response = self._retry_fresh_404(batch_id, created_at, open_stream)
        written = 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with dest.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    written += len(chunk)
        finally:
            response.close()
        return written

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
            except anthropic.NotFoundError:
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
