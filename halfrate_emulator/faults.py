"""Fault injection: HTTP faults per endpoint, cut result streams, lost create responses, and
per-request errored/expired outcomes. Every decision is deterministic (counts, or a hash of the
seed with a call index or custom_id), so tests that use faults are stable.

Faults live in memory: they start from the options (CLI flags) at every start and the admin API
replaces them; they are not part of the persisted state.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from halfrate_emulator.errors import ApiError
from halfrate_emulator.ids import stable_unit
from halfrate_emulator.options import FaultConfig, HttpFault

_MESSAGES = {
    400: "Invalid request (injected by the emulator).",
    401: "invalid x-api-key (injected by the emulator)",
    403: "Your API key does not have permission to use the specified resource (injected).",
    413: "Request exceeds the maximum allowed number of bytes (injected by the emulator).",
    429: "Number of request tokens has exceeded your per-minute rate limit (injected by the emulator).",
    500: "Internal server error (injected by the emulator).",
    502: "Bad gateway (injected by the emulator).",
    503: "Service unavailable (injected by the emulator).",
    504: "Gateway timeout (injected by the emulator).",
    529: "Overloaded (injected by the emulator).",
}


class FaultState:
    """The active fault plan plus the counters that count-based faults consume."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.replace(config)

    def replace(self, config: FaultConfig) -> None:
        """Install a new plan and reset every counter."""
        with self._lock:
            self.config = config
            self._remaining = [rule.count for rule in config.http]
            self._calls: Counter[str] = Counter()
            self._lost_creates = config.lose_create_responses
            self._stalled_creates = config.stall_create_responses
            self._bare_502_creates = config.bare_502_after_create
            self._stalled_messages = config.stall_message_responses
            self._messages_before_stall = config.stall_messages_after
            self._cuts = config.results_cut_count if config.results_cut_after is not None else 0

    def snapshot(self) -> dict[str, object]:
        """The plan as JSON-able data, with count-based rules showing what is left."""
        with self._lock:
            rules = [
                rule.model_copy(update={"count": left}).model_dump()
                for rule, left in zip(self.config.http, self._remaining, strict=True)
            ]
            data = self.config.model_dump() | {"http": rules}
            data["lose_create_responses"] = self._lost_creates
            data["stall_create_responses"] = self._stalled_creates
            data["bare_502_after_create"] = self._bare_502_creates
            data["stall_message_responses"] = self._stalled_messages
            data["stall_messages_after"] = self._messages_before_stall
            data["results_cut_count"] = self._cuts
            return data

    def check_http(self, endpoint: str) -> None:
        """Raise the injected error if a rule fires for this call of `endpoint`."""
        with self._lock:
            index = self._calls[endpoint]
            self._calls[endpoint] += 1
            fired = self._fire(endpoint, index)
        if fired is not None:
            raise self._injected(fired)

    def _fire(self, endpoint: str, index: int) -> HttpFault | None:
        for position, rule in enumerate(self.config.http):
            if rule.endpoint not in ("*", endpoint):
                continue
            if rule.count is not None:
                if self._remaining[position]:
                    self._remaining[position] = (self._remaining[position] or 0) - 1
                    return rule
            elif stable_unit(self.config.seed, endpoint, index, position) < rule.rate:
                return rule
        return None

    def _injected(self, rule: HttpFault) -> ApiError:
        message = _MESSAGES[rule.status]
        if rule.error_code is not None:
            return ApiError(rule.status, message, error_code=rule.error_code, bare=rule.bare)
        headers = {}
        if rule.status in (429, 500, 502, 503, 504, 529):
            wait = self.config.retry_after
            headers = {"retry-after": f"{wait:g}", "retry-after-ms": f"{int(wait * 1000)}"}
        return ApiError(rule.status, message, headers=headers, bare=rule.bare)

    def take_bare_502_create(self) -> bool:
        """True if this committed create must be answered with a bare 502 (consumes one)."""
        with self._lock:
            if self._bare_502_creates <= 0:
                return False
            self._bare_502_creates -= 1
            return True

    def take_lost_create(self) -> bool:
        """True if this create's response must be dropped (consumes one)."""
        with self._lock:
            if self._lost_creates <= 0:
                return False
            self._lost_creates -= 1
            return True

    def take_stalled_create(self) -> float:
        """Seconds to hold this create's response (0 when no stall is due; consumes one)."""
        with self._lock:
            if self._stalled_creates <= 0:
                return 0.0
            self._stalled_creates -= 1
            return self.config.stall_seconds

    def take_stalled_message(self) -> float:
        """Seconds to hold this answered Messages call (0: none due; consumes one)."""
        with self._lock:
            if self._stalled_messages <= 0:
                return 0.0
            if self._messages_before_stall > 0:
                self._messages_before_stall -= 1
                return 0.0
            self._stalled_messages -= 1
            return self.config.stall_seconds

    def take_results_cut(self) -> int | None:
        """The line count after which this results download is cut, or None (consumes one)."""
        with self._lock:
            if self._cuts <= 0 or self.config.results_cut_after is None:
                return None
            self._cuts -= 1
            return self.config.results_cut_after


def injected_outcome(
    config: FaultConfig, batch_id: str, custom_id: str
) -> dict[str, object] | None:
    """An injected `errored`/`expired` result for one batch request, or None to process it."""
    pattern = config.errored_custom_id_pattern
    if not (pattern or config.errored_rate or config.expired_rate):
        return None
    if pattern and re.search(pattern, custom_id):
        return errored_result("api_error", "Internal server error (injected by custom_id pattern).")
    draw = stable_unit(config.seed, "outcome", custom_id)
    if draw < config.errored_rate:
        kind = (
            "overloaded_error" if stable_unit(config.seed, "kind", custom_id) < 0.5 else "api_error"
        )
        return errored_result(kind, f"{_MESSAGES[529 if kind == 'overloaded_error' else 500]}")
    if draw < config.errored_rate + config.expired_rate:
        return {"type": "expired"}
    return None


def breaks_output(config: FaultConfig, custom_id: str) -> bool:
    """Whether this request's output is made invalid (invalid_output_custom_id_pattern)."""
    pattern = config.invalid_output_custom_id_pattern
    return bool(pattern and re.search(pattern, custom_id))


def errored_result(error_type: str, message: str) -> dict[str, object]:
    """The `result` of an errored batch request (a full ErrorResponse inside)."""
    error = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": None}
    return {"type": "errored", "error": error}


def rule(
    endpoint: str,
    status: int,
    count: int | None = None,
    rate: float = 0.0,
    error_code: str | None = None,
) -> HttpFault:
    """Shorthand for building an `HttpFault` from loosely typed input (CLI, admin)."""
    fields = {"endpoint": endpoint, "status": status, "count": count, "rate": rate}
    return HttpFault.model_validate(fields | {"error_code": error_code})
