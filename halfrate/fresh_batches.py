"""A 404 for a batch created moments ago is a propagation delay, not a missing batch.

Right after a create, a retrieve or a results download may answer 404 for a while
(anthropics/anthropic-sdk-python#1432). The gateway retries such a 404, with backoff, while
the batch is younger than a grace period (a minute), judged by when this process learned of
it and by the `created_at` the API or the ledger gave.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from halfrate.errors import APIError, ErrorKind

log = logging.getLogger("halfrate.gateway")  # a part of the gateway, and logs as the gateway

FRESH_BATCH_GRACE_S = 60.0
"""A 404 for a batch younger than this is a propagation delay, not a missing batch."""

_T = TypeVar("_T")


class FreshBatches:
    """When this process learned of each batch, and the retry of a young batch's 404s."""

    def __init__(
        self,
        *,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        grace_s: float = FRESH_BATCH_GRACE_S,
    ) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._grace_s = grace_s
        self._born: dict[str, float] = {}  # batch id -> monotonic time this process learned it

    def created(self, batch_id: str) -> None:
        """This process just created the batch."""
        self._born[batch_id] = self._monotonic()

    def noted(self, batch_id: str) -> None:
        """This process just learned of the batch (e.g. adopted it), unless it knew it before."""
        self._born.setdefault(batch_id, self._monotonic())

    def retry_404(
        self, batch_id: str, created_at: datetime | str | None, call: Callable[[], _T]
    ) -> _T:
        """`call()`, called again after a 404 (`APIError` not_found) while the batch is fresh."""
        age: float | None = None
        slept = 0.0
        delay = 0.5
        while True:
            try:
                return call()
            except APIError as exc:
                if exc.kind is not ErrorKind.not_found:
                    raise
                if age is None:
                    age = self._age_s(batch_id, created_at)
                if age is None or age + slept + delay > self._grace_s:
                    raise
                log.info(
                    "batch %s: 404 %.0f s after creation, retrying in %.1f s",
                    batch_id,
                    age + slept,
                    delay,
                )
                self._sleep(delay)
                slept += delay
                delay = min(delay * 2, 8.0)

    def _age_s(self, batch_id: str, created_at: datetime | str | None) -> float | None:
        ages: list[float] = []
        born = self._born.get(batch_id)
        if born is not None:
            ages.append(self._monotonic() - born)
        if isinstance(created_at, str):
            created_at = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if created_at is not None:
            ages.append(max(0.0, (datetime.now(UTC) - created_at).total_seconds()))
        return min(ages) if ages else None
