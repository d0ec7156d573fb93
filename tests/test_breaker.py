"""The circuit breaker state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from tests.clock import FakeClock
from lkn.breaker import BreakerState, CircuitBreaker, Ticket, Verdict

pytestmark = pytest.mark.fast


def make(threshold: int = 5, reset: float = 30.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(threshold, reset, clock), clock


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), Verdict.FAILURE)


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _ = make()
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.available()


def test_success_resets_the_consecutive_count() -> None:
    breaker, _ = make()
    fail(breaker, 4)
    breaker.record(breaker.acquire(), Verdict.SUCCESS)
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_reset_admits_exactly_one_trial() -> None:
    breaker, clock = make(reset=30.0)
    fail(breaker, 5)
    clock.now += 29.9
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.available()
    assert breaker.acquire().trial is True
    assert not breaker.available()
    with pytest.raises(RuntimeError):
        breaker.acquire()


def test_successful_trial_closes() -> None:
    breaker, clock = make()
    fail(breaker, 5)
    clock.now += 30
    trial = breaker.acquire()
    breaker.record(trial, Verdict.SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.acquire().trial is False


def test_failed_trial_reopens_for_a_full_reset_period() -> None:
    breaker, clock = make()
    fail(breaker, 5)
    clock.now += 30
    breaker.record(breaker.acquire(), Verdict.FAILURE)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(30.0)


def test_neutral_trial_gives_its_place_back() -> None:
    breaker, clock = make()
    fail(breaker, 5)
    clock.now += 30
    breaker.record(breaker.acquire(), Verdict.NEUTRAL)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.available()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0)


def test_reading_the_state_never_changes_it() -> None:
    """A scrape of /metrics must not decide what a late outcome does."""
    breaker, clock = make(threshold=1)
    fail(breaker)
    clock.now += 31
    epoch = breaker.epoch
    for _ in range(3):
        assert breaker.state is BreakerState.HALF_OPEN
        assert breaker.available() and breaker.retry_after() == 0.0
    assert breaker.epoch == epoch
    # A success from a request admitted before the breaker opened closes nothing...
    breaker.record(Ticket(epoch - 1, False), Verdict.SUCCESS)
    assert breaker.state is BreakerState.HALF_OPEN
    # ...and the trial is still there to take.
    assert breaker.acquire().trial


def test_a_stale_failure_cannot_reopen_a_half_open_breaker_or_let_two_trials_run() -> None:
    breaker, clock = make(threshold=2)
    early = breaker.acquire()  # admitted while closed
    fail(breaker, 2)
    clock.now += 31
    trial = breaker.acquire()
    assert trial.trial
    breaker.record(early, Verdict.FAILURE)  # the old request ends late
    assert breaker.state is BreakerState.HALF_OPEN and breaker.trial_in_flight
    with pytest.raises(RuntimeError):
        breaker.acquire()  # still exactly one trial
    breaker.record(trial, Verdict.SUCCESS)
    assert breaker.state is BreakerState.CLOSED


def test_a_stale_success_cannot_close_an_open_breaker() -> None:
    breaker, _ = make(threshold=1)
    early = breaker.acquire()
    fail(breaker)
    breaker.record(early, Verdict.SUCCESS)
    assert breaker.state is BreakerState.OPEN


def test_a_forced_trial_is_admitted_before_the_reset_time() -> None:
    breaker, _ = make(threshold=1)
    fail(breaker)
    assert not breaker.available()
    ticket = breaker.acquire(force_trial=True)
    assert ticket.trial and breaker.trial_in_flight


def test_a_passing_check_is_the_trial_of_a_half_open_breaker() -> None:
    breaker, clock = make(threshold=1)
    fail(breaker)
    assert not breaker.trial_passed(), "not before the reset time"
    clock.now += 30
    assert breaker.trial_passed()
    assert breaker.state is BreakerState.CLOSED
