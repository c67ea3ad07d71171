"""Configuration of the emulator: server options and the fault-injection plan."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Endpoint = Literal[
    "*", "create", "list", "retrieve", "cancel", "delete", "results", "messages", "count_tokens"
]
"""Names of the API endpoints that HTTP faults can target (`*` matches every endpoint)."""

DEFAULT_MAX_BATCH_BYTES = 256_000_000
"""The Message Batches body limit ("256 MB"; MB = 10^6 bytes)."""


class HttpFault(BaseModel):
    """One HTTP fault rule: answer calls to `endpoint` with `status` instead of serving them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: Endpoint = "*"
    """Which endpoint the rule applies to."""
    status: Literal[400, 401, 403, 413, 429, 500, 502, 503, 504, 529] = 429
    """The HTTP status sent back, with the API's error type for it (429 rate_limit_error, 500
    api_error, 529 overloaded_error, 413 request_too_large, 401 authentication_error, ...)."""
    count: int | None = Field(default=None, ge=0)
    """Fail the next `count` matching calls (count-based); None means rate-based."""
    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of matching calls that fail (rate-based, deterministic by seed and call index)."""
    error_code: str | None = None
    """Sent as `error.details.error_code`; when set, no `retry-after` is sent (like the spend
    cap's 429 `enforced_spend_limit_reached`, which retrying does not fix)."""
    bare: bool = False
    """Answer with a proxy's HTML error page instead of the API's JSON error body."""


class FaultConfig(BaseModel):
    """Every fault the emulator can inject; all default to off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    """Seed of every deterministic fault decision."""
    errored_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of batch requests that end `errored` with a retriable api_error/overloaded_error."""
    expired_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of batch requests that end `expired`."""
    errored_custom_id_pattern: str | None = None
    """Regex: batch requests whose custom_id matches (re.search) end `errored` (api_error)."""
    invalid_output_custom_id_pattern: str | None = None
    """Regex: batch requests whose custom_id matches succeed with an output that breaks their
    output schema (`{}`; empty text without a schema), as a model that drifts from it."""
    http: tuple[HttpFault, ...] = ()
    """HTTP fault rules, checked in order before an endpoint runs."""
    retry_after: float = Field(default=0.05, ge=0.0)
    """Seconds sent as `retry-after` (and `retry-after-ms`) with injected faults."""
    transient_404: int = Field(default=0, ge=0)
    """Each new batch answers its first N retrieve/results calls with 404 not_found_error."""
    results_cut_after: int | None = Field(default=None, ge=0)
    """Drop the connection after this many result lines (see `results_cut_count`)."""
    results_cut_count: int = Field(default=1, ge=0)
    """How many results downloads are cut before downloads complete again."""
    lose_create_responses: int = Field(default=0, ge=0)
    """The next N creates are committed, then the connection is dropped with no response."""
    stall_create_responses: int = Field(default=0, ge=0)
    """The next N creates are committed, then their response is held for `stall_seconds`."""
    stall_seconds: float = Field(default=30.0, ge=0.0)
    """How long a stalled create response is held (ends early if the client goes away)."""
    bare_502_after_create: int = Field(default=0, ge=0)
    """The next N creates are committed, then answered 502 with a proxy's HTML page (no API
    error body): the client cannot tell that a batch was made."""
    stall_message_responses: int = Field(default=0, ge=0)
    """N `POST /v1/messages` calls are answered (and audited: the call is paid for), then their
    response is held for `stall_seconds` (it ends early if the client goes away): a lost answer."""
    stall_messages_after: int = Field(default=0, ge=0)
    """How many Messages calls are served normally before the stalls start."""


class EmulatorOptions(BaseModel):
    """Options of one emulator instance (CLI flags map one to one onto these fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str | None = None
    """If set, the only API key accepted; otherwise any non-empty key is accepted."""
    admin_token: str | None = None
    """If set, `/_emulator/*` requires the header `x-emulator-admin-token: <token>`."""
    time_scale: float = Field(default=1.0, ge=0.0)
    """Virtual seconds per real second (0 freezes the clock; advance it via the admin API)."""
    processing_seconds: float = Field(default=2.0, ge=0.0)
    """Virtual seconds a batch takes from creation to `ended`."""
    cancel_seconds: float = Field(default=1.0, ge=0.0)
    """Virtual seconds a batch stays `canceling` before it ends."""
    max_batch_bytes: int = Field(default=DEFAULT_MAX_BATCH_BYTES, ge=1)
    """Create bodies larger than this get 413 request_too_large."""
    max_requests: int = Field(default=100_000, ge=1)
    """Most requests allowed in one batch."""
    max_queued_requests: int | None = Field(default=None, ge=1)
    """The workspace's processing-queue cap: a create that would put more batch requests in
    the queue (requests of batches not ended yet) is refused with 429 `rate_limit_error` and
    a `retry-after` (the faults' `retry_after`). None: no cap."""
    messages_rate_limit: int = Field(default=4000, ge=1)
    """`POST /v1/messages` calls admitted per `rate_limit_window`; more get 429 with
    `retry-after`. Every answer carries `anthropic-ratelimit-requests-*` headers."""
    rate_limit_window: float = Field(default=60.0, gt=0.0)
    """The rate limit's window, in real seconds."""
    shuffle_results: bool = True
    """Return results in a deterministic per-batch shuffled order (as the API may)."""
    fixture_mode: bool = False
    """Lenient mode for the SDK's generated tests: any batch id exists, cancel/delete succeed."""
    public_base_url: str | None = None
    """Base of `results_url`; defaults to the scheme and Host of each request."""
    organization_id: str = "00000000-0000-4000-8000-000000000000"
    """Value of the `anthropic-organization-id` response header."""
    workspace_id: str = "wrkspc_01EmulatorDefaultWorkspace"
    """Value of the `anthropic-workspace-id` response header."""
    faults: FaultConfig = FaultConfig()
    """Faults active at start-up (the admin API can replace them)."""
