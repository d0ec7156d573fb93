"""Circuit breaker state machine (no I/O, injected clock).

CLOSED --N consecutive failures--> OPEN --reset time--> HALF_OPEN --trial ok--> CLOSED
                                     ^                      |
                                     +----trial failed------+

While HALF_OPEN exactly one trial request is admitted; a trial that ends neither in success
nor in failure (client error, client cancellation) gives its place back.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

Clock = Callable[[], float]


class BreakerState(enum.IntEnum):
    """Values are what ``/metrics`` exports (0 closed, 1 half-open, 2 open)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self, failure_threshold: int = 5, reset_timeout: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._trial_in_flight = False
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def trial_in_flight(self) -> bool:
        """HALF_OPEN with its one trial request under way."""
        return self.state is BreakerState.HALF_OPEN and self._trial_in_flight

    def available(self) -> bool:
        """Whether :meth:`acquire` would admit a request now (does not take the trial)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._trial_in_flight
        )

    def acquire(self) -> bool:
        """Admit one request. Returns True if it is the half-open trial (caller must settle)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        raise RuntimeError("acquire() on a breaker that is not available")

    def retry_after(self) -> float:
        """Seconds until the breaker admits a request again (0 if it does now)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
        return 0.0

    def record_success(self, trial: bool = False) -> None:
        if trial or self._state is not BreakerState.OPEN:
            self._state = BreakerState.CLOSED
            self._trial_in_flight = False
        self._failures = 0

    def record_failure(self, trial: bool = False) -> None:
        if trial or self.state is BreakerState.HALF_OPEN:
            self._open()
            return
        if self._state is BreakerState.OPEN:
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open()

    def record_neutral(self, trial: bool = False) -> None:
        """The request proved nothing about the engine (client error or cancellation)."""
        if trial and self._state is BreakerState.HALF_OPEN:
            self._trial_in_flight = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._trial_in_flight = False
        self._failures = max(self._failures, self.failure_threshold)
