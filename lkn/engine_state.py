"""What the engine pool knows about each engine, and what keeps it current.

:class:`Engine` and :class:`Lease` are the pool's records; :class:`EngineHealth` runs the
readiness checks (``LKN_READY_FAILURES`` consecutive failed checks mark an engine not ready,
``LKN_READY_SUCCESSES`` passing ones ready again; a passing check on a half-open engine is
its trial), counts engine failures on the breakers and exports each engine's live state as
metrics. :func:`outcome_of` is the breaker's verdict on an error (:mod:`lkn.outcome`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lkn.breaker import BreakerState, CircuitBreaker, Clock, Ticket, Verdict
from lkn.config import Settings
from lkn.engines import EngineClient
from lkn.errors import EngineTimeout, EngineUnavailable
from lkn.metrics import Metrics
from lkn.outcome import classify
from lkn.placement import PlacementRecord

log = logging.getLogger("lkn.pool")


def outcome_of(exc: BaseException) -> Verdict:
    """What an exception raised by an attempt says about the engine that ran it: the breaker
    verdict of :func:`lkn.outcome.classify` (a failure only for errors that count against
    the engine)."""
    return classify(exc).verdict


@dataclass(eq=False)
class Engine:
    """One engine of the pool and what the pool knows about it."""

    client: EngineClient
    breaker: CircuitBreaker
    #: None until the first readiness check answered.
    ready: bool | None = None
    in_flight: int = 0
    #: Consecutive failed / passed readiness checks.
    check_failures: int = 0
    check_passes: int = 0
    #: When a readiness check last passed (pool clock; -inf: never).
    passed_at: float = float("-inf")

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def model(self) -> str | None:
        return self.client.model_id

    def usable(self) -> bool:
        return self.ready is not False and self.breaker.available()


@dataclass(eq=False)
class Lease:
    """One request's hold on an engine; settle it exactly once."""

    engine: Engine
    ticket: Ticket
    settled: bool = field(default=False)

    @property
    def trial(self) -> bool:
        return self.ticket.trial


class EngineHealth:
    """Readiness checks and breaker failure counts of the pool's engines.

    ``trial_over`` is called whenever a readiness check closes a half-open breaker, so that
    requests waiting for that trial look again.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        clock: Clock,
        placement: PlacementRecord,
        trial_over: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._placement = placement
        self._trial_over = trial_over
        self._task: asyncio.Task[None] | None = None

    def watch(self, engine: Engine) -> None:
        """Export ``engine``'s breaker state, readiness and load, read at scrape time."""
        self._metrics.watch_engine(
            engine.name,
            lambda: float(engine.breaker.state),
            lambda: 1.0 if engine.ready else 0.0,
            lambda: float(engine.in_flight),
        )

    async def start(self, engines: Sequence[Engine]) -> None:
        """Check every engine once, then keep checking them in the background."""
        await self.check_all(engines)
        self._task = asyncio.get_running_loop().create_task(self._loop(engines))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self, engines: Sequence[Engine]) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval)
            try:
                await self.check_all(engines)
            except Exception:  # a bug here must not stop the checks
                log.exception("readiness check loop failed")

    async def check_all(self, engines: Sequence[Engine]) -> None:
        await asyncio.gather(*(self.check(engine) for engine in engines))

    async def check(self, engine: Engine) -> None:
        """One readiness check of ``engine``."""
        try:
            passed = await engine.client.check_ready(self._settings.health_timeout)
        except EngineTimeout:
            passed = False  # busy, not broken: only readiness counts it
        except EngineUnavailable:
            passed = False
            # An engine that cannot even be reached is failing, whether or not traffic comes.
            breaker = engine.breaker
            if breaker.state is BreakerState.CLOSED:
                self.count_failure(engine, Ticket(breaker.epoch, False))
        self.record_check(engine, passed)

    def record_check(self, engine: Engine, passed: bool) -> None:
        """Count one readiness check: N failures in a row mark the engine not ready, M passes
        mark it ready again; the very first check decides at once."""
        was = engine.ready
        if passed:
            self._record_pass(engine)
        else:
            engine.check_passes = 0
            engine.check_failures += 1
            if was is None or engine.check_failures >= self._settings.ready_failures:
                engine.ready = False
        if engine.ready != was:
            if not engine.ready:
                self._placement.forget(engine.name)
            log.info(
                "engine readiness changed engine=%s ready=%s breaker=%s",
                engine.name, engine.ready, engine.breaker.state.name.lower(),
            )

    def _record_pass(self, engine: Engine) -> None:
        engine.passed_at = self._clock()
        engine.check_failures = 0
        engine.check_passes += 1
        if engine.ready is None or engine.check_passes >= self._settings.ready_successes:
            engine.ready = True
        if engine.ready and engine.breaker.trial_passed():
            log.info("engine breaker closed engine=%s by=readiness", engine.name)
            self._trial_over()

    def count_failure(self, engine: Engine, ticket: Ticket) -> None:
        """One engine failure, told to its breaker (and counted in ``lkn_engine_failures``)."""
        breaker = engine.breaker
        before = breaker.state
        self._metrics.child(self._metrics.engine_failures, engine.name).inc()
        breaker.record(ticket, Verdict.FAILURE)
        if before is not BreakerState.OPEN and breaker.state is BreakerState.OPEN:
            log.warning(
                "engine breaker opened engine=%s failures=%d retry_after=%.1f",
                engine.name, breaker.consecutive_failures, breaker.retry_after(),
            )
