"""A clock that tests move by hand: the pool, its breakers and every exchange read the time
from the gateway's clock (``Gateway.start(settings, clock)``), so no test sleeps for a
breaker's reset or a deadline to pass."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
