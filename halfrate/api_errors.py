"""SDK exceptions converted into halfrate's plain-data `APIError`.

No SDK exception leaves the gateway: each one carries its request, API key header included,
and Prefect pickles a failed run's exception to disk. `call_api` converts every failure of an
SDK call (and of the results stream) into `halfrate.errors.APIError`, plain data with no
cause or context chained, so nothing of the SDK can be reached from what a task raises.

The SDK is imported only when a failure is converted (see `halfrate.gateway` for why).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import httpx2

from halfrate.errors import APIError, ErrorKind, classify
from halfrate.rate_limits import retry_after
from halfrate.request_body import RequestFileError

if TYPE_CHECKING:
    import anthropic

_T = TypeVar("_T")


def call_api(endpoint: str, call: Callable[[], _T]) -> _T:
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
        detail = first_line(str(exc)) or "no response"
        return APIError(ErrorKind.no_response, endpoint, f"{type(exc).__name__}: {detail}")
    detail = first_line(str(exc))
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
        message = f"HTTP {exc.status_code} without an API error body: {first_line(raw)!r}"
    return APIError(
        classify(exc.status_code, error_type, code, message),
        endpoint,
        message,
        status=exc.status_code,
        error_type=error_type,
        request_id=_text(exc.request_id),
        error_code=code,
        retry_after=retry_after(exc.response.headers),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of `text`, cut to `limit` characters (for error messages)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]
