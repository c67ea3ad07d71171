"""The virtual clock: real time scaled by `time_scale` plus an offset moved by the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Timer = Callable[[], float]


class VirtualClock:
    """Virtual epoch seconds = anchor + scale x (real - real_anchor) + offset.

    The anchors and offset are persisted by the store so that virtual time continues where it
    left off after a restart (a frozen clock, scale 0, stays exactly where it was).
    """

    def __init__(
        self,
        scale: float,
        virtual_anchor: float,
        real_anchor: float,
        offset: float = 0.0,
        timer: Timer = time.time,
    ) -> None:
        self.scale = scale
        self.virtual_anchor = virtual_anchor
        self.real_anchor = real_anchor
        self.offset = offset
        self._timer = timer

    def now(self) -> float:
        """The current virtual time in epoch seconds."""
        elapsed = self._timer() - self.real_anchor
        return self.virtual_anchor + self.scale * elapsed + self.offset

    def advance(self, seconds: float) -> float:
        """Move virtual time forward by `seconds` and return the new virtual now."""
        self.offset += seconds
        return self.now()

    def rebase(self, scale: float) -> None:
        """Change the scale without a jump: re-anchor at the current virtual time."""
        current = self.now()
        self.virtual_anchor, self.real_anchor, self.offset = current, self._timer(), 0.0
        self.scale = scale


def rfc3339(epoch: float) -> str:
    """Format epoch seconds the way the API does: `2024-08-20T18:37:24.100435Z`."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def maybe_rfc3339(epoch: float | None) -> str | None:
    """`rfc3339` for a nullable timestamp."""
    return None if epoch is None else rfc3339(epoch)
