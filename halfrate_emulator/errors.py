"""API errors in the exact wire shape, and the signal that drops a connection on purpose."""

from __future__ import annotations

from collections.abc import Mapping

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """An error answered as `{"type":"error","error":{type,message},"request_id":…}`."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        error_code: str | None = None,
        bare: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.headers = dict(headers or {})
        self.error_code = error_code
        self.bare = bare
        """Answered as a proxy's HTML page, not the API's JSON error body."""


class DropConnection(Exception):
    """Raised inside a handler to close the TCP connection without (finishing) a response."""


def error_body(
    error_type: str, message: str, request_id: str | None, error_code: str | None = None
) -> dict[str, object]:
    """The API's error body (with `details.error_code` when there is one)."""
    error: dict[str, object] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": request_id}


def invalid(message: str) -> ApiError:
    """A 400 invalid_request_error."""
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    """A 404 not_found_error."""
    return ApiError(404, message)
