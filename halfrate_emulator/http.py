"""HTTP plumbing shared by the API and admin routes: headers, auth, errors, dropped connections."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halfrate_emulator.errors import ApiError, DropConnection, error_body, invalid
from halfrate_emulator.ids import new_id
from halfrate_emulator.options import EmulatorOptions
from halfrate_emulator.validation import SUPPORTED_VERSIONS

logger = logging.getLogger(__name__)

REQUEST_ID = "halfrate.request_id"
DROP = "halfrate.drop"

Handler = Callable[[Request], Awaitable[Response]]
ApiHandler = Callable[[Request, str], Awaitable[Response]]


class EmulatorASGI:
    """Outermost ASGI layer: a request id and the API's headers on every response, and a clean
    `DropConnection` for the server protocol when a handler asked to drop the connection."""

    def __init__(self, app: ASGIApp, options: EmulatorOptions, log: deque[dict[str, Any]]) -> None:
        self.app = app
        self.options = options
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope[REQUEST_ID] = request_id
        extra = [
            (b"request-id", request_id.encode()),
            (b"anthropic-organization-id", self.options.organization_id.encode()),
            (b"anthropic-workspace-id", self.options.workspace_id.encode()),
        ]

        headers = dict(scope.get("headers") or [])
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": None,
            "request_id": request_id,
            "retry_count": headers.get(b"x-stainless-retry-count", b"").decode() or None,
        }
        self.log.append(entry)

        async def guarded_send(message: Message) -> None:
            if scope.get(DROP):  # e.g. Starlette trying to send a 500 for our DropConnection
                raise DropConnection()
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except BaseExceptionGroup as group:
            if group.subgroup(DropConnection) is not None:
                raise DropConnection() from None
            raise


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def error_response(request: Request, err: ApiError) -> Response:
    """The API's error shape with the request's id (or a proxy's HTML page for a bare fault)."""
    if err.bare:
        page = f"<html><body><h1>{err.status}</h1><p>{err.message}</p></body></html>"
        return Response(page.encode(), err.status, err.headers, media_type="text/html")
    body = error_body(err.error_type, err.message, request.scope.get(REQUEST_ID), err.error_code)
    return json_response(body, err.status, err.headers)


async def drain(request: Request) -> None:
    """Read and discard an unread body so the client sees our answer, not a broken pipe."""
    try:
        async for _ in request.stream():
            pass
    except (RuntimeError, ClientDisconnect):  # already consumed, or the client went away
        pass


def check_auth(request: Request, options: EmulatorOptions) -> None:
    """401 unless `x-api-key` (preferred) or `Authorization: Bearer` carries an accepted key."""
    key = request.headers.get("x-api-key")
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    if not key:
        raise ApiError(401, "x-api-key header is required")
    if options.api_key is not None and key != options.api_key:
        raise ApiError(401, "invalid x-api-key")


def check_version(request: Request) -> str:
    """The `anthropic-version` header, which must name a supported version."""
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in SUPPORTED_VERSIONS:
        raise invalid(f"anthropic-version: {version!r} is not a valid version")
    return version


def guard(handler: Handler) -> Handler:
    """Turn ApiError and unexpected exceptions into API-shaped responses; never crash."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            await drain(request)
            return error_response(request, err)
        except DropConnection:
            request.scope[DROP] = True
            raise
        except ClientDisconnect:  # the client went away mid-upload: nobody to answer
            return Response(status_code=499)
        except Exception:
            logger.exception("emulator: unexpected error on %s", request.url.path)
            return error_response(request, ApiError(500, "Internal server error"))

    return endpoint
