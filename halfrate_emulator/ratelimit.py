"""The Messages API's request rate limit: `anthropic-ratelimit-requests-*` headers and 429s.

The API meters requests per minute per model class and says where a client stands on every
answer (`anthropic-ratelimit-requests-limit`, `-remaining`, `-reset` as RFC 3339), and answers
429 `rate_limit_error` with `retry-after` once the limit is spent. The emulator keeps one
sliding window of admitted `POST /v1/messages` calls (`messages_rate_limit` calls per
`rate_limit_window` real seconds: rate limits pace real requests, so the window runs on the
wall clock, not the virtual one).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from halfrate_emulator.clock import rfc3339
from halfrate_emulator.errors import ApiError

PREFIX = "anthropic-ratelimit-requests-"


class RequestRateLimit:
    """A sliding window of admitted calls; `admit` raises a 429 once it is full."""

    def __init__(self, limit: int, window: float, timer: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window = window
        self._timer = timer
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> dict[str, str]:
        """Count one call and return the headers its answer carries, or raise the 429."""
        with self._lock:
            now = self._timer()
            while self._admitted and self._admitted[0] <= now - self.window:
                self._admitted.popleft()
            if len(self._admitted) >= self.limit:
                wait = self._admitted[0] + self.window - now
                raise ApiError(
                    429,
                    f"This request would exceed your rate limit of {self.limit} requests per "
                    f"{self.window:g} s (emulator); retry after {wait:.2f} s.",
                    headers=self._headers(now, 0) | retry_after(wait),
                )
            self._admitted.append(now)
            return self._headers(now, self.limit - len(self._admitted))

    def _headers(self, now: float, remaining: int) -> dict[str, str]:
        reset = (self._admitted[0] + self.window) if self._admitted else now
        return {
            PREFIX + "limit": str(self.limit),
            PREFIX + "remaining": str(remaining),
            PREFIX + "reset": rfc3339(reset),
        }


def retry_after(seconds: float) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up, as the API sends it) and `retry-after-ms`."""
    seconds = max(0.0, seconds)
    return {
        "retry-after": str(math.ceil(seconds)),
        "retry-after-ms": str(math.ceil(seconds * 1000)),
    }
