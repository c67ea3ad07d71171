"""The emulator's ASGI application: API routes, admin routes, API-shaped 404/405s."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from halfrate_emulator.admin import AdminRoutes
from halfrate_emulator.errors import ApiError
from halfrate_emulator.http import EmulatorASGI, error_response
from halfrate_emulator.routes import BatchRoutes
from halfrate_emulator.service import Emulator


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    return error_response(
        request, ApiError(status, f"{message}: {request.method} {request.url.path}")
    )


def build_app(emulator: Emulator) -> EmulatorASGI:
    """The complete ASGI app for one emulator instance."""
    routes = BatchRoutes(emulator).routes() + AdminRoutes(emulator).routes()
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    return EmulatorASGI(app, emulator.options, emulator.request_log)
