"""Admission: the ``LKN_MAX_CONCURRENCY`` slots, taken by cost (one per answer written)."""

from __future__ import annotations

from lkn.errors import TooManyRequests
from lkn.metrics import Metrics


class Admission:
    """The slots in use, and the in-flight gauge beside them."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self._metrics = metrics
        self._active = 0

    @property
    def active(self) -> int:
        return self._active

    def admit(self, weight: int = 1) -> int:
        """Take ``weight`` slots (a request for ``n`` answers costs ``n``; never more than the
        whole limit, so it can run on an idle gateway); returns what was taken. Raises
        TooManyRequests (429) when they are not free."""
        limit = self.limit
        weight = max(1, min(weight, limit))
        if not self.admit_more(weight):
            counts = f" (this one counts {weight})" if weight > 1 else ""
            raise TooManyRequests(
                f"the gateway is at its limit of {limit} concurrent requests{counts}; "
                "retry shortly", retry_after=1.0,
            )
        return weight

    def admit_more(self, weight: int) -> bool:
        """Take ``weight`` more slots (also for care decided after admission: a vote's K
        answers); False, taking nothing, when they are not free."""
        if weight <= 0:
            return True
        if self._active + weight > self.limit:
            return False
        self._active += weight
        self._metrics.in_flight.inc(weight)
        return True

    def leave(self, weight: int = 1) -> None:
        self._active -= weight
        self._metrics.in_flight.dec(weight)
