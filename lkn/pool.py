"""The one async engine pool shared by every front-end.

Selection: the least-loaded engine that is ready and whose breaker admits a request, or,
with cache-aware placement, the one most likely to hold the prompt's prefix (lkn.placement).
Breakers: one per engine; engine failures count, client errors and cancellations never do.
Readiness: a background task polls every engine (``/ready``, ``/health`` for old servers).
Retries: :meth:`EnginePool.run` retries once, on another engine, when the attempt fails
before anything reached the client; the caller decides when that point has passed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from lkn.breaker import BreakerState, CircuitBreaker, Clock
from lkn.config import Settings
from lkn.engines import EngineClient
from lkn.errors import EngineError, EngineUnavailable, LknError, NoEngineAvailable
from lkn.metrics import Metrics
from lkn.placement import NO_PREFIX, PlacementRecord, Prefix

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


def outcome_of(exc: BaseException) -> Outcome:
    """What a request's exception says about the engine that served it."""
    if isinstance(exc, LknError) and exc.counts_against_engine:
        return Outcome.FAILURE
    return Outcome.NEUTRAL


@dataclass(eq=False)
class Engine:
    client: EngineClient
    breaker: CircuitBreaker
    #: None until the first readiness check answered.
    ready: bool | None = None
    in_flight: int = 0

    @property
    def name(self) -> str:
        return self.client.name

    def usable(self) -> bool:
        return self.ready is not False and self.breaker.available()


@dataclass(eq=False)
class Lease:
    """One request's hold on an engine; settle it exactly once."""

    engine: Engine
    trial: bool
    settled: bool = field(default=False)


class EnginePool:
    def __init__(
        self,
        settings: Settings,
        clients: Sequence[EngineClient],
        metrics: Metrics,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self.engines = [
            Engine(c, CircuitBreaker(settings.breaker_failures, settings.breaker_reset, clock))
            for c in clients
        ]
        for engine in self.engines:
            self._watch(engine)
        self._health_task: asyncio.Task[None] | None = None
        self._next = 0
        self._trial_waiters: list[asyncio.Future[None]] = []
        self.placement = PlacementRecord(settings.placement)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> EnginePool:
        """Build the pool and its clients (call inside the running loop)."""
        return cls(settings, [EngineClient(spec, settings) for spec in settings.engines], metrics)

    def _watch(self, engine: Engine) -> None:
        self._metrics.watch_engine(
            engine.name,
            lambda: float(engine.breaker.state),
            lambda: 1.0 if engine.ready else 0.0,
            lambda: float(engine.in_flight),
        )

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.check_all()
        self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            try:
                await self._health_task
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*(e.client.close() for e in self.engines), return_exceptions=True)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval)
            try:
                await self.check_all()
            except Exception:  # a bug here must not stop the checks
                log.exception("readiness check loop failed")

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(engine) for engine in self.engines))

    async def _check(self, engine: Engine) -> None:
        was = engine.ready
        try:
            engine.ready = await engine.client.check_ready(self._settings.health_timeout)
        except EngineUnavailable:
            engine.ready = False
            # An engine that cannot even be reached is failing, whether or not traffic comes.
            if engine.breaker.state is BreakerState.CLOSED:
                engine.breaker.record_failure()
        if engine.ready != was:
            if not engine.ready:
                self.placement.forget(engine.name)
            log.info(
                "engine readiness changed engine=%s ready=%s breaker=%s",
                engine.name, engine.ready, engine.breaker.state.name.lower(),
            )

    # ---- selection ------------------------------------------------------------------

    def ready(self) -> bool:
        """At least one engine is ready and admits requests."""
        return any(engine.usable() for engine in self.engines)

    def retry_after(self) -> float:
        """Seconds a client should wait before trying again when nothing is usable."""
        waits = [e.breaker.retry_after() for e in self.engines if e.ready is not False]
        if waits:
            return max(1.0, min(waits))
        return max(1.0, self._settings.health_interval)

    def acquire(self, exclude: Sequence[Engine] = (), prefix: Prefix = NO_PREFIX) -> Lease:
        """Take the least-loaded usable engine (a closed breaker beats a half-open trial)."""
        best: Engine | None = None
        # Start the scan one further each time, so ties are broken round-robin.
        count = len(self.engines)
        self._next = (self._next + 1) % count
        for i in range(count):
            engine = self.engines[(self._next + i) % count]
            if engine in exclude or not engine.usable():
                continue
            if best is None or _rank(engine) < _rank(best):
                best = engine
        if prefix and best is not None and best.breaker.state is BreakerState.CLOSED:
            best = self._placed(best, exclude, prefix)
        if best is None:
            retry = self.retry_after()
            raise NoEngineAvailable(
                "no inference engine is available right now (all are down, starting or "
                f"tripped); retry in {retry:.0f} s",
                retry_after=retry,
            )
        lease = Lease(best, trial=best.breaker.acquire())
        best.in_flight += 1
        self.placement.record(best.name, prefix)
        return lease

    def _placed(self, least: Engine, exclude: Sequence[Engine], prefix: Prefix) -> Engine:
        """Among the closed engines, the one the placement record prefers (else ``least``)."""
        closed = {e.name: e for e in self.engines if e not in exclude and e.usable()
                  and e.breaker.state is BreakerState.CLOSED}
        name = self.placement.choose(
            prefix, [(n, e.in_flight) for n, e in closed.items()], least.name
        )
        return closed[name] if name is not None else least

    async def acquire_waiting(self, exclude: Sequence[Engine] = (),
                              deadline: float | None = None,
                              prefix: Prefix = NO_PREFIX) -> Lease:
        """:meth:`acquire`, but when the only way in is a half-open trial already under way,
        wait (up to ``LKN_BREAKER_TRIAL_WAIT``) for its outcome instead of turning the request
        away: requests that arrive while a recovered engine proves itself are served as soon
        as the trial succeeds, and still never reach the engine before that."""
        limit: float | None = None
        while True:
            try:
                return self.acquire(exclude, prefix)
            except NoEngineAvailable:
                if limit is None:  # only now: the usual path pays for nothing here
                    limit = time.monotonic() + self._settings.breaker_trial_wait
                    if deadline is not None:
                        limit = min(limit, deadline)
                remaining = limit - time.monotonic()
                if remaining <= 0 or not any(
                    e not in exclude and e.ready is not False and e.breaker.trial_in_flight
                    for e in self.engines
                ):
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._trial_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if waiter in self._trial_waiters:
                    self._trial_waiters.remove(waiter)

    def _trial_over(self) -> None:
        waiters, self._trial_waiters = self._trial_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def confirm(self, lease: Lease) -> None:
        """The engine has started answering: a half-open trial has proved it works."""
        if lease.trial and not lease.settled:
            lease.trial = False
            self._succeeded(lease.engine, trial=True)
            self._trial_over()

    def _succeeded(self, engine: Engine, trial: bool) -> None:
        before = engine.breaker.state
        engine.breaker.record_success(trial)
        if before is not BreakerState.CLOSED and engine.breaker.state is BreakerState.CLOSED:
            log.info("engine breaker closed engine=%s", engine.name)

    def settle(self, lease: Lease, outcome: Outcome) -> None:
        if lease.settled:
            return
        lease.settled = True
        engine = lease.engine
        engine.in_flight -= 1
        breaker = engine.breaker
        if outcome is Outcome.SUCCESS:
            self._succeeded(engine, lease.trial)
        elif outcome is Outcome.FAILURE:
            self._metrics.child(self._metrics.engine_failures, engine.name).inc()
            before = breaker.state
            breaker.record_failure(lease.trial)
            if before is not BreakerState.OPEN and breaker.state is BreakerState.OPEN:
                log.warning(
                    "engine breaker opened engine=%s failures=%d retry_after=%.1f",
                    engine.name, breaker.consecutive_failures, breaker.retry_after(),
                )
        else:
            breaker.record_neutral(lease.trial)
        if lease.trial:
            self._trial_over()

    async def run(
        self, attempt: Callable[[Lease], Awaitable[T]], deadline: float | None = None,
        prefix: Prefix = NO_PREFIX,
    ) -> tuple[Lease, T]:
        """Run ``attempt`` on an engine; on an engine failure, once more on another one.

        ``attempt`` must raise only before anything reached the client. The returned lease
        is still held: the caller settles it when the request ends.
        """
        tried: list[Engine] = []
        while True:
            lease = await self.acquire_waiting(tried, deadline, prefix)
            try:
                return lease, await attempt(lease)
            except EngineError as exc:
                self.settle(lease, outcome_of(exc))
                tried.append(lease.engine)
                if not exc.retryable or len(tried) > 1 or not self._has_other(tried):
                    raise
                self._metrics.retries.inc()
                log.warning(
                    "retrying on another engine engine=%s error=%s", lease.engine.name, exc
                )
            except BaseException as exc:
                self.settle(lease, outcome_of(exc))
                raise

    def _has_other(self, tried: Sequence[Engine]) -> bool:
        return any(e not in tried and e.usable() for e in self.engines)


def _rank(engine: Engine) -> tuple[int, int]:
    half_open = 1 if engine.breaker.state is BreakerState.HALF_OPEN else 0
    return half_open, engine.in_flight
