"""The circuit breaker state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from lkn.breaker import BreakerState, CircuitBreaker

pytestmark = pytest.mark.fast


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 5, reset: float = 30.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(threshold, reset, clock), clock


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _ = make()
    for _ in range(4):
        breaker.record_failure()
        assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.available()


def test_success_resets_the_consecutive_count() -> None:
    breaker, _ = make()
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_reset_admits_exactly_one_trial() -> None:
    breaker, clock = make(reset=30.0)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 29.9
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.available()
    assert breaker.acquire() is True
    assert not breaker.available()
    with pytest.raises(RuntimeError):
        breaker.acquire()


def test_successful_trial_closes() -> None:
    breaker, clock = make()
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    trial = breaker.acquire()
    breaker.record_success(trial)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.acquire() is False


def test_failed_trial_reopens_for_a_full_reset_period() -> None:
    breaker, clock = make()
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    trial = breaker.acquire()
    breaker.record_failure(trial)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(30.0)


def test_neutral_trial_gives_its_place_back() -> None:
    breaker, clock = make()
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    trial = breaker.acquire()
    breaker.record_neutral(trial)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.available()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0)
