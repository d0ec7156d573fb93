"""The engine pool against in-process engines and a fake clock: routing by model, trials that
always come, overload that is not failure, readiness that needs consecutive checks."""

from __future__ import annotations

import asyncio

import pytest

from lkn.breaker import BreakerState, Verdict
from lkn import errors
from lkn.errors import EngineOverloaded, ModelNotFound, NoEngineAvailable, EngineTimeout
from lkn.metrics import Metrics
from lkn.pool import EnginePool, outcome_of
from tests.conftest import make_settings
from tests.clock import FakeClock
from tests.fake_engine import FakeEngine

pytestmark = pytest.mark.fast


def pool_of(*engines: FakeEngine, **settings: object) -> tuple[EnginePool, FakeClock]:
    clock = FakeClock()
    base = {"breaker_failures": 2, "breaker_reset": 30.0, **settings}
    pool = EnginePool(make_settings("http://127.0.0.1:1", **base), list(engines), Metrics(), clock)
    for engine in pool.engines:
        pool.record_check(engine, True)
    return pool, clock


def trip(pool: EnginePool, index: int) -> None:
    engine = pool.engines[index]
    while engine.breaker.state is BreakerState.CLOSED:
        lease = pool.acquire(exclude=[e for e in pool.engines if e is not engine])
        pool.settle(lease, Verdict.FAILURE)


def test_requests_go_only_to_the_engines_serving_their_model() -> None:
    pool, _ = pool_of(FakeEngine("a:1", "model-a"), FakeEngine("b:1", "model-b"))
    for _ in range(6):
        lease = pool.acquire("model-b")
        assert lease.engine.name == "b:1"
        pool.settle(lease, Verdict.SUCCESS)
    assert pool.acquire("model-a").engine.name == "a:1"
    assert pool.acquire(None).engine.name in ("a:1", "b:1")


def test_an_unknown_model_is_model_not_found() -> None:
    pool, _ = pool_of(FakeEngine("a:1", "model-a"))
    with pytest.raises(ModelNotFound) as info:
        pool.acquire("gpt-4")
    assert info.value.status() == 404 and info.value.code == "model_not_found"
    assert not pool.admits("gpt-4")


def test_a_name_with_a_tag_finds_the_engine_of_its_base_name() -> None:
    pool, _ = pool_of(FakeEngine("a:1", "smollm2"))
    assert pool.acquire("smollm2:latest").engine.name == "a:1"


def test_a_half_open_engine_gets_its_trial_while_another_is_healthy() -> None:
    pool, clock = pool_of(FakeEngine("a:1"), FakeEngine("b:1"))
    trip(pool, 0)
    for _ in range(4):  # while open, everything goes to b
        lease = pool.acquire()
        assert lease.engine.name == "b:1"
        pool.settle(lease, Verdict.SUCCESS)
    clock.now += 30
    trial = pool.acquire()
    assert trial.engine.name == "a:1" and trial.trial
    pool.confirm(trial)
    assert pool.engines[0].breaker.state is BreakerState.CLOSED


def test_a_passing_readiness_check_is_the_trial_of_a_half_open_engine() -> None:
    pool, clock = pool_of(FakeEngine("a:1"), FakeEngine("b:1"))
    trip(pool, 0)
    pool.record_check(pool.engines[0], True)
    assert pool.engines[0].breaker.state is BreakerState.OPEN, "not before the reset time"
    clock.now += 30
    pool.record_check(pool.engines[0], True)
    assert pool.engines[0].breaker.state is BreakerState.CLOSED


def test_with_every_breaker_open_an_engine_that_passed_its_check_is_tried_at_once() -> None:
    pool, clock = pool_of(FakeEngine("a:1"), FakeEngine("b:1"))
    trip(pool, 0)
    clock.now += 1
    trip(pool, 1)
    assert not pool.admits(), "nothing passed a check since the breakers opened"
    with pytest.raises(NoEngineAvailable):
        pool.acquire()
    clock.now += 1
    pool.record_check(pool.engines[1], True)
    pool.record_check(pool.engines[0], True)
    assert pool.admits()
    trial = pool.acquire()
    assert trial.trial and trial.engine.name == "a:1", "the one that opened first"
    assert pool.engines[1].breaker.state is BreakerState.OPEN


def test_ready_is_what_the_pool_admits() -> None:
    pool, clock = pool_of(FakeEngine("a:1"))
    assert pool.ready()
    trip(pool, 0)
    assert not pool.ready()
    clock.now += 30
    assert pool.ready(), "half-open: the trial would be admitted"
    lease = pool.acquire()
    assert not pool.ready(), "the trial is taken"
    pool.settle(lease, Verdict.NEUTRAL)
    assert pool.ready()


def test_a_stale_outcome_of_a_lease_from_before_the_breaker_opened_is_ignored() -> None:
    pool, clock = pool_of(FakeEngine("a:1"))
    early = pool.acquire()
    trip(pool, 0)
    clock.now += 30
    trial = pool.acquire()
    pool.settle(early, Verdict.FAILURE)
    assert pool.engines[0].breaker.trial_in_flight
    pool.settle(trial, Verdict.SUCCESS)
    assert pool.engines[0].breaker.state is BreakerState.CLOSED


async def test_run_leaves_out_excluded_engines_and_stops_after_its_tries() -> None:
    a, b, c = FakeEngine("a:1"), FakeEngine("b:1"), FakeEngine("c:1")
    pool, _ = pool_of(a, b, c)
    tried: list[str] = []

    async def failing(lease: object) -> str:
        tried.append(lease.engine.name)  # type: ignore[attr-defined]
        raise errors.EngineError("down", engine=tried[-1])

    with pytest.raises(errors.EngineError):
        await pool.run(failing, exclude=[pool.engines[0]], tries=1)
    assert tried == ["b:1"] or tried == ["c:1"]
    tried.clear()
    with pytest.raises(errors.EngineError):
        await pool.run(failing, exclude=[pool.engines[0]])
    assert sorted(tried) == ["b:1", "c:1"]


async def test_engine_overload_is_retried_elsewhere_and_never_opens_the_breaker() -> None:
    a, b = FakeEngine("a:1"), FakeEngine("b:1")
    pool, _ = pool_of(a, b)
    tried: list[str] = []

    async def attempt(lease: object) -> str:
        name = lease.engine.name  # type: ignore[attr-defined]
        tried.append(name)
        if name == "a:1":
            raise EngineOverloaded("queue full", engine=name, upstream_status=503)
        return name

    for _ in range(10):
        lease, served = await pool.run(attempt)
        pool.settle(lease, Verdict.SUCCESS)
        assert served == "b:1"
    assert pool.engines[0].breaker.state is BreakerState.CLOSED
    assert pool.engines[0].breaker.consecutive_failures == 0
    assert tried.count("a:1") >= 1


def test_one_slow_readiness_check_does_not_mark_an_engine_not_ready() -> None:
    pool, _ = pool_of(FakeEngine("a:1"), ready_failures=3, ready_successes=2)
    engine = pool.engines[0]
    for _ in range(2):
        pool.record_check(engine, False)
        assert engine.ready is True
    pool.record_check(engine, False)
    assert engine.ready is False
    pool.record_check(engine, True)
    assert engine.ready is False, "one pass is not enough to come back"
    pool.record_check(engine, True)
    assert engine.ready is True


async def test_a_readiness_timeout_never_counts_against_the_breaker() -> None:
    slow = FakeEngine("a:1", check_errors=[EngineTimeout("slow /ready")] * 6)
    pool, _ = pool_of(slow)
    for _ in range(6):
        await pool.check(pool.engines[0])
    assert pool.engines[0].breaker.state is BreakerState.CLOSED
    assert pool.engines[0].breaker.consecutive_failures == 0


def _error_classes(root: type[errors.LknError]) -> list[type[errors.LknError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _error_classes(sub)
    return found


@pytest.mark.parametrize("upstream", [None, 400, 404, 429, 500, 502, 503, 529])
def test_the_breaker_hears_a_failure_exactly_from_errors_that_count_against_the_engine(
    upstream: int | None,
) -> None:
    for cls in _error_classes(errors.LknError):
        engine_error = issubclass(cls, errors.EngineError)
        error = cls("x", upstream_status=upstream) if engine_error else cls("x")
        expected = Verdict.FAILURE if cls.counts_against_engine else Verdict.NEUTRAL
        assert outcome_of(error) is expected, cls.__name__
    for other in (asyncio.CancelledError(), ConnectionResetError(), ValueError("bug")):
        assert outcome_of(other) is Verdict.NEUTRAL
