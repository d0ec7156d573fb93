"""Circuit breaker state machine (no I/O, injected clock).

CLOSED --N consecutive failures--> OPEN --reset time--> HALF_OPEN --trial ok--> CLOSED
                                     ^                      |
                                     +----trial failed------+

While HALF_OPEN exactly one trial is admitted; a trial that ends neither in success nor in
failure (client error, client cancellation, engine overload) gives its place back.

Every admitted request gets a :class:`Ticket` carrying the breaker's *epoch*: the epoch
changes with every state change, and an outcome whose ticket is from an older epoch is
ignored (a request that started before the breaker opened cannot close it or reopen it).
Reading the state never changes it: OPEN past its reset time *reads* as HALF_OPEN, and only
:meth:`acquire` (or :meth:`trial_passed`) moves it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class BreakerState(enum.IntEnum):
    """Values are what ``/metrics`` exports (0 closed, 1 half-open, 2 open)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Verdict(enum.Enum):
    """What one request's outcome says about the engine's health."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Ticket:
    epoch: int
    trial: bool


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
        self._epoch = 0
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    # ---- reading (no side effects) ------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._reset_due():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def opened_at(self) -> float:
        return self._opened_at

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def trial_in_flight(self) -> bool:
        """HALF_OPEN with its one trial under way."""
        return self._state is BreakerState.HALF_OPEN and self._trial_in_flight

    def available(self) -> bool:
        """Whether :meth:`acquire` would admit a request now (takes nothing)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._trial_in_flight
        )

    def retry_after(self) -> float:
        """Seconds until the breaker admits a request again (0 if it does now)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
        return 0.0

    def _reset_due(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_timeout

    # ---- admitting ----------------------------------------------------------------------

    def acquire(self, force_trial: bool = False) -> Ticket:
        """Admit one request; a ticket with ``trial=True`` is the half-open trial.

        ``force_trial`` admits an OPEN breaker's trial before its reset time (the pool does
        that when every engine's breaker is open, rather than refuse everything).
        """
        if self._state is BreakerState.CLOSED:
            return Ticket(self._epoch, False)
        if self._state is BreakerState.OPEN and (force_trial or self._reset_due()):
            self._move(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return Ticket(self._epoch, True)
        raise RuntimeError("acquire() on a breaker that is not available")

    # ---- outcomes -----------------------------------------------------------------------

    def record(self, ticket: Ticket, verdict: Verdict) -> None:
        """Settle one admitted request; outcomes of an older epoch are ignored."""
        if ticket.epoch != self._epoch:
            return
        if ticket.trial:
            self._trial_in_flight = False
            if verdict is Verdict.SUCCESS:
                self._close()
            elif verdict is Verdict.FAILURE:
                self._open()
            return
        if verdict is Verdict.SUCCESS:
            self._failures = 0
        elif verdict is Verdict.FAILURE and self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def trial_passed(self) -> bool:
        """An active check proved the engine (a passing readiness check after the reset
        time): close a half-open breaker whose trial is not under way. True if it closed."""
        if self.state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._close()
            return True
        return False

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._epoch += 1
        self._trial_in_flight = False

    def _open(self) -> None:
        self._move(BreakerState.OPEN)
        self._opened_at = self._clock()
        self._failures = max(self._failures, self.failure_threshold)

    def _close(self) -> None:
        self._move(BreakerState.CLOSED)
        self._failures = 0
