"""halfrate's own API error: what a failed API call means, as plain data.

SDK exceptions carry the request they were raised for, headers included
(`Authorization: Bearer <key>`), and Prefect pickles a failed run's exception to disk. So no SDK
exception may leave the gateway: `halfrate.gateway` converts every one (`halfrate.api_errors`)
into an `APIError` holding only strings and numbers (status, error type, message, request id,
error code, retry-after), with no cause or context chained to it.

One definition of what each failure means (`ErrorKind`):

| kind          | from                                               | a create was made? | retry? |
|---------------|----------------------------------------------------|--------------------|--------|
| `no_response` | connection error, timeout, cut stream              | unknown            | yes    |
| `server`      | 5xx without an API error body (a proxy's page)     | unknown            | yes    |
| `busy`        | 408, 409, 429 (not the spend limit), 5xx with an API error body | no   | yes    |
| `spend_limit` | 429 `enforced_spend_limit_reached`, 400 "usage limits" | no             | no     |
| `auth`        | 401, 403                                           | no                 | no     |
| `not_found`   | 404, 410                                           | no                 | no     |
| `too_large`   | 413                                                | no                 | no     |
| `invalid`     | any other 4xx                                      | no                 | no     |
| `unexpected`  | a response that does not parse, any other SDK error | unknown           | no     |
"""

from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    no_response = "no_response"
    server = "server"
    busy = "busy"
    spend_limit = "spend_limit"
    auth = "auth"
    not_found = "not_found"
    too_large = "too_large"
    invalid = "invalid"
    unexpected = "unexpected"


TRANSIENT = frozenset({ErrorKind.no_response, ErrorKind.server, ErrorKind.busy})
"""Worth calling again later (a read, or a create that certainly made nothing)."""
OUTCOME_UNKNOWN = frozenset({ErrorKind.no_response, ErrorKind.server, ErrorKind.unexpected})
"""After a create failed this way the batch may exist: reconcile before sending again."""
SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached"})


FINAL_KINDS = frozenset(
    {ErrorKind.spend_limit, ErrorKind.auth, ErrorKind.invalid, ErrorKind.too_large}
)
"""Answers that call for a person (a key, a limit, a request to fix): never worth retrying."""


class ActionableError(Exception):
    """A problem with the job, its input, the settings or the key, not a bug.

    Its message names the file, row or key and says what to do, so it is shown as one line
    (no traceback unless asked for) and a task never retries it. Mixed into the errors of
    configuration (JobConfigError), input (ExtractError), refusals (PreflightError) and such.
    """


def is_actionable(exc: BaseException) -> bool:
    """Whether `exc` needs a person rather than a retry or a debugger."""
    if isinstance(exc, APIError):
        return exc.kind in FINAL_KINDS
    return isinstance(exc, ActionableError)


class APIError(RuntimeError):
    """A failed API call, as plain data (never an SDK object, request or header)."""

    def __init__(
        self,
        kind: ErrorKind,
        endpoint: str,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind = ErrorKind(kind)
        self.endpoint = endpoint
        self.message = message
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.error_code = error_code
        self.retry_after = retry_after
        super().__init__(self.describe())

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {
            "status": self.status,
            "error_type": self.error_type,
            "request_id": self.request_id,
            "error_code": self.error_code,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (self.kind.value, self.endpoint, self.message, fields))

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT

    @property
    def outcome_unknown(self) -> bool:
        return self.kind in OUTCOME_UNKNOWN

    def describe(self) -> str:
        """`create: 429 rate_limit_error: <message> (request req_...)`."""
        head = " ".join(str(p) for p in (self.status, self.error_type) if p is not None)
        code = f" [{self.error_code}]" if self.error_code else ""
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.endpoint}: {head + ': ' if head else ''}{self.message}{code}{rid}"


def _rebuild(kind: str, endpoint: str, message: str, fields: dict[str, Any]) -> APIError:
    return APIError(ErrorKind(kind), endpoint, message, **fields)


def classify(
    status: int, error_type: str | None, error_code: str | None, message: str
) -> ErrorKind:
    """The kind of an HTTP error answer; `error_type` is None when the body was not the API's."""
    if error_code in SPEND_LIMIT_CODES or (status == 400 and "usage limit" in message.lower()):
        return ErrorKind.spend_limit
    if status in (408, 409, 429):
        return ErrorKind.busy  # the request was turned away: nothing was created
    if status >= 500:
        # An API-shaped 5xx is the API's own answer (nothing was created); a bare one may come
        # from a proxy that gave up while the API went on.
        return ErrorKind.busy if error_type is not None else ErrorKind.server
    return {
        401: ErrorKind.auth,
        403: ErrorKind.auth,
        404: ErrorKind.not_found,
        410: ErrorKind.not_found,
        413: ErrorKind.too_large,
    }.get(status, ErrorKind.invalid)
