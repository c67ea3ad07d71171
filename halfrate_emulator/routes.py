"""The Message Batches and Messages API routes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from halfrate_emulator.errors import ApiError, DropConnection, invalid
from halfrate_emulator.http import (
    DROP,
    ApiHandler,
    Handler,
    check_auth,
    check_version,
    guard,
    json_response,
)
from halfrate_emulator.ingest import malformed, spool_body, too_large
from halfrate_emulator.lifecycle import render_batch
from halfrate_emulator.messages import count_tokens, create_message
from halfrate_emulator.service import Emulator

MESSAGES_MAX_BYTES = 32_000_000
_CHUNK = 1024 * 1024


class BatchRoutes:
    """Route handlers bound to one `Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def base_url(self, request: Request) -> str:
        """Where `results_url` points: the configured public URL or this request's origin."""
        configured = self.emu.options.public_base_url
        return (configured or str(request.base_url)).rstrip("/")

    def api(self, name: str, handler: ApiHandler) -> Handler:
        """Wrap a handler with auth, version check and HTTP fault injection."""

        async def endpoint(request: Request) -> Response:
            check_auth(request, self.emu.options)
            version = check_version(request)
            self.emu.faults.check_http(name)
            return await handler(request, version)

        return guard(endpoint)

    async def create(self, request: Request, version: str) -> Response:
        """POST /v1/messages/batches: spool, validate and commit a batch."""
        limit = self.emu.options.max_batch_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large()
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding not in ("", "identity"):
            raise invalid(f"Content-Encoding {encoding!r} is not supported by the emulator")
        spool = self.emu.spool_path()
        try:
            size = await spool_body(request.stream(), spool, limit)
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
        row = await run_in_threadpool(self.emu.create_batch, spool, size, version)
        if self.emu.faults.take_lost_create():
            await run_in_threadpool(self.emu.mark_dropped, row.id)
            request.scope[DROP] = True
            raise DropConnection()
        await hold(request, self.emu.faults.take_stalled_create())
        if self.emu.faults.take_bare_502_create():  # committed, but the client cannot tell
            raise ApiError(502, "Bad gateway (injected by the emulator)", bare=True)
        row, state = await run_in_threadpool(self.emu.observe, row.id)
        return json_response(render_batch(row, state, self.base_url(request)))

    async def retrieve(self, request: Request, version: str) -> Response:
        """GET /v1/messages/batches/{id}."""
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self.emu.take_transient_404, batch_id)
        return json_response(
            await run_in_threadpool(self.emu.render, batch_id, self.base_url(request))
        )

    async def list_batches(self, request: Request, version: str) -> Response:
        """GET /v1/messages/batches: one page, newest first."""
        raw = request.query_params.get("limit", "20")
        try:
            limit = int(raw)
        except ValueError:
            raise invalid("limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise invalid(f"limit: Input should be between 1 and 1000, got {limit}")
        after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
        if after and before and not self.emu.options.fixture_mode:
            raise invalid("after_id and before_id cannot both be set")
        page = await run_in_threadpool(
            self.emu.list_page, limit, after, before, self.base_url(request)
        )
        return json_response(page)

    async def cancel(self, request: Request, version: str) -> Response:
        """POST /v1/messages/batches/{id}/cancel."""
        batch_id = request.path_params["batch_id"]
        await drain_body(request)
        return json_response(
            await run_in_threadpool(self.emu.cancel, batch_id, self.base_url(request))
        )

    async def delete(self, request: Request, version: str) -> Response:
        """DELETE /v1/messages/batches/{id}."""
        await drain_body(request)
        return json_response(
            await run_in_threadpool(self.emu.delete, request.path_params["batch_id"])
        )

    async def results(self, request: Request, version: str) -> Response:
        """GET /v1/messages/batches/{id}/results: the JSONL file, streamed."""
        batch_id = request.path_params["batch_id"]
        await run_in_threadpool(self.emu.take_transient_404, batch_id)
        path = await run_in_threadpool(self.emu.results_path, batch_id)
        cut = self.emu.faults.take_results_cut()
        if path is None:
            return Response(b"", media_type="application/x-jsonl")
        # A known length lets clients tell a cut stream from a complete one.
        length = {"content-length": str(path.stat().st_size)}
        return StreamingResponse(
            stream_file(path, cut), headers=length, media_type="application/x-jsonl"
        )

    async def messages(self, request: Request, version: str) -> Response:
        """POST /v1/messages: the deterministic responder, synchronously, within the rate
        limit (its `anthropic-ratelimit-requests-*` headers on every answer)."""
        body = await read_json(request)
        limits = self.emu.messages_rate.admit()
        stall = self.emu.faults.take_stalled_message()
        answer = await run_in_threadpool(create_message, self.emu, body, version, stall > 0)
        await hold(request, stall)  # answered and paid for, but the client may never see it
        return json_response(answer, headers=limits)

    async def count(self, request: Request, version: str) -> Response:
        """POST /v1/messages/count_tokens."""
        return json_response(count_tokens(await read_json(request)))

    def routes(self) -> list[Route]:
        """The API's routes (a `?beta=true` query is simply ignored)."""
        batch = "/v1/messages/batches/{batch_id}"
        return [
            Route("/v1/messages/batches", self.api("create", self.create), methods=["POST"]),
            Route("/v1/messages/batches", self.api("list", self.list_batches), methods=["GET"]),
            Route(batch, self.api("retrieve", self.retrieve), methods=["GET"]),
            Route(batch, self.api("delete", self.delete), methods=["DELETE"]),
            Route(batch + "/cancel", self.api("cancel", self.cancel), methods=["POST"]),
            Route(batch + "/results", self.api("results", self.results), methods=["GET"]),
            Route("/v1/messages", self.api("messages", self.messages), methods=["POST"]),
            Route(
                "/v1/messages/count_tokens", self.api("count_tokens", self.count), methods=["POST"]
            ),
        ]


async def hold(request: Request, seconds: float) -> None:
    """Hold a response for `seconds` (a stalled create), or until the client goes away."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not await request.is_disconnected():
        await anyio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


async def drain_body(request: Request) -> None:
    """Consume an (empty or ignored) body, e.g. on cancel and delete."""
    async for _ in request.stream():
        pass


async def read_json(request: Request) -> Any:
    """A JSON body of at most 32 MB (the Messages API limit)."""
    size, parts = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MESSAGES_MAX_BYTES:
            raise too_large()
        parts.append(chunk)
    try:
        return orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        raise malformed() from None


def stream_file(path: Path, cut_after: int | None) -> Iterator[bytes]:
    """Stream a JSONL file in 1 MiB chunks; with `cut_after`, drop the connection after that
    many lines (the client sees a body that ends mid-stream)."""
    sent = 0
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            if cut_after is not None and sent + chunk.count(b"\n") >= cut_after:
                end = _nth_newline(chunk, cut_after - sent)
                if end:
                    yield chunk[:end]
                raise DropConnection()
            sent += chunk.count(b"\n")
            yield chunk
    if cut_after is not None:
        raise DropConnection()


def _nth_newline(chunk: bytes, n: int) -> int:
    """Offset just past the n-th newline of `chunk` (0 for n == 0)."""
    end = 0
    for _ in range(n):
        end = chunk.index(b"\n", end) + 1
    return end
