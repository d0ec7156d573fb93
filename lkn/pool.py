"""One async engine pool shared by every front-end.

Routing: a request names a model; only the engines serving it are candidates (an unknown
model is :class:`~lkn.errors.ModelNotFound`).
Selection among the candidates, in this order:

1. a half-open engine whose trial is free gets the request as its trial, even while others
   are healthy (a recovered engine always comes back);
2. otherwise the least-loaded ready engine with a closed breaker (ties round-robin), or,
   with cache-aware placement, the closed one most likely to hold the prompt's prefix
   (:mod:`lkn.placement`);
3. otherwise, when every candidate's breaker is open, the engine whose breaker opened first,
   among those whose readiness check passed since, is tried at once as a trial, rather than
   refusing everything for the reset time.

Breakers: one per engine, fed only by real engine failures (see :mod:`lkn.outcome`); engine
overload (429/503/529) is capacity and retried elsewhere. Readiness: a background task
checks every engine (``/ready``, :class:`lkn.engine_state.EngineHealth`).
:meth:`EnginePool.admits` is the same choice as :meth:`EnginePool.acquire` without taking
anything, so ``/ready`` says what the pool admits.
Retries: :meth:`EnginePool.run` tries each candidate at most once while the attempt fails
before anything reached the client with a retryable error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from lkn.breaker import BreakerState, CircuitBreaker, Clock, Ticket, Verdict
from lkn.config import Settings
from lkn.engine_state import Engine, EngineHealth, Lease, outcome_of
from lkn.engines import EngineClient, HttpEngineClient
from lkn.errors import EngineError, ModelNotFound, NoEngineAvailable
from lkn.metrics import Metrics
from lkn.placement import NO_PREFIX, PlacementRecord, Prefix
from lkn.values import JSONObject

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Kept under this name for callers that settle leases themselves.
Outcome = Verdict

__all__ = ["Engine", "EnginePool", "Lease", "Outcome", "outcome_of"]


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
        self._clock = clock
        self.engines = [
            Engine(c, CircuitBreaker(settings.breaker_failures, settings.breaker_reset, clock))
            for c in clients
        ]
        self._next = 0
        self._trial_waiters: list[asyncio.Future[None]] = []
        self.placement = PlacementRecord(settings.placement)
        self.health = EngineHealth(settings, metrics, clock, self.placement, self._trial_over)
        for engine in self.engines:
            self.health.watch(engine)

    @property
    def waiting_for_trial(self) -> int:
        """Requests waiting for a half-open engine's trial to end."""
        return len(self._trial_waiters)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics,
                      clock: Clock = time.monotonic) -> EnginePool:  # fmt: skip
        """Build the pool and its HTTP clients (call inside the running loop)."""
        clients = [HttpEngineClient(spec, settings) for spec in settings.engines]
        return cls(settings, clients, metrics, clock=clock)

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.health.start(self.engines)

    async def close(self) -> None:
        await self.health.stop()
        await asyncio.gather(*(e.client.close() for e in self.engines), return_exceptions=True)

    async def check_all(self) -> None:
        await self.health.check_all(self.engines)

    async def check(self, engine: Engine) -> None:
        """One readiness check of ``engine``."""
        await self.health.check(engine)

    def record_check(self, engine: Engine, passed: bool) -> None:
        """Count one readiness check (:meth:`EngineHealth.record_check`)."""
        self.health.record_check(engine, passed)

    # ---- routing and selection ------------------------------------------------------

    def prefix(self, body: JSONObject) -> Prefix:
        """The request's prefix for cache-aware placement; none where there is nothing to
        choose between (a pool of one engine)."""
        return self.placement.prefix(body) if len(self.engines) > 1 else NO_PREFIX

    def candidates(self, model: str | None) -> list[Engine]:
        """The engines serving ``model`` (None: any). Raises :class:`ModelNotFound` when no
        engine serves it and every engine's model is known."""
        if model is None:
            return self.engines
        found = [e for e in self.engines if e.model == model]
        if not found and ":" in model:  # name:tag, as Ollama-style clients send it
            base = model.split(":", 1)[0]
            found = [e for e in self.engines if e.model == base]
        if found:
            return found
        unknown = [e for e in self.engines if e.model is None]
        if not unknown:
            raise ModelNotFound(
                f"The model '{model}' does not exist", param="model", code="model_not_found"
            )
        return unknown

    def _choose(self, engines: Sequence[Engine], exclude: Sequence[Engine]) -> Engine | None:
        """The engine the next request goes to (takes nothing); see the module docstring."""
        best: Engine | None = None
        count = len(engines)
        start = self._next % count if count else 0
        for i in range(count):
            engine = engines[(start + i) % count]
            if engine in exclude or engine.ready is False:
                continue
            state = engine.breaker.state
            if state is BreakerState.HALF_OPEN:
                if not engine.breaker.trial_in_flight:
                    return engine
            elif state is BreakerState.CLOSED:
                if best is None or engine.in_flight < best.in_flight:
                    best = engine
        if best is not None:
            return best
        # Every candidate is open (or busy with its trial): rather than refuse everything
        # for the reset time, try the longest-open engine whose readiness check has passed
        # since its breaker opened.
        opened = [
            e for e in engines
            if e not in exclude and e.ready is True and e.breaker.state is BreakerState.OPEN
            and e.passed_at > e.breaker.opened_at
        ]
        return min(opened, key=lambda e: e.breaker.opened_at) if opened else None

    def admits(self, model: str | None = None) -> bool:
        """Whether a request (for ``model``) would be admitted now."""
        try:
            return self._choose(self.candidates(model), ()) is not None
        except ModelNotFound:
            return False

    def ready(self) -> bool:
        return self.admits()

    def retry_after(self) -> float:
        """Seconds a client should wait before trying again when nothing is usable."""
        waits = [e.breaker.retry_after() for e in self.engines if e.ready is not False]
        if waits:
            return max(1.0, min(waits))
        return max(1.0, self._settings.health_interval)

    def acquire(
        self,
        model: str | None = None,
        exclude: Sequence[Engine] = (),
        prefix: Prefix = NO_PREFIX,
    ) -> Lease:
        engines = self.candidates(model)
        chosen = self._choose(engines, exclude)
        if prefix and chosen is not None and chosen.breaker.state is BreakerState.CLOSED:
            chosen = self._placed(engines, chosen, exclude, prefix)
        if chosen is None:
            retry = self.retry_after()
            raise NoEngineAvailable(
                "no inference engine is available right now (all are down, starting or "
                f"tripped); retry in {retry:.0f} s",
                retry_after=retry,
            )
        self._next += 1
        ticket = chosen.breaker.acquire(force_trial=True)
        if ticket.trial:
            log.info("engine breaker trial engine=%s", chosen.name)
        chosen.in_flight += 1
        self.placement.record(chosen.name, prefix)
        return Lease(chosen, ticket)

    def _placed(self, engines: Sequence[Engine], least: Engine, exclude: Sequence[Engine],
                prefix: Prefix) -> Engine:  # fmt: skip
        """Among the closed candidates, the one the placement record prefers (else ``least``)."""
        closed = {e.name: e for e in engines if e not in exclude and e.usable()
                  and e.breaker.state is BreakerState.CLOSED}
        name = self.placement.choose(
            prefix, [(n, e.in_flight) for n, e in closed.items()], least.name
        )
        return closed[name] if name is not None else least

    async def acquire_waiting(
        self,
        model: str | None = None,
        exclude: Sequence[Engine] = (),
        deadline: float | None = None,
        prefix: Prefix = NO_PREFIX,
    ) -> Lease:
        """:meth:`acquire`, but when the only way in is a half-open trial already under way,
        wait (up to ``LKN_BREAKER_TRIAL_WAIT``) for its outcome instead of turning the request
        away."""
        limit: float | None = None
        while True:
            try:
                return self.acquire(model, exclude, prefix)
            except NoEngineAvailable:
                if limit is None:  # only now: the usual path pays for nothing here
                    limit = self._clock() + self._settings.breaker_trial_wait
                    if deadline is not None:
                        limit = min(limit, deadline)
                remaining = limit - self._clock()
                if remaining <= 0 or not any(
                    e not in exclude and e.ready is not False and e.breaker.trial_in_flight
                    for e in self.candidates(model)
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

    # ---- outcomes -------------------------------------------------------------------

    def confirm(self, lease: Lease) -> None:
        """The engine has started answering (first chunk, or a non-streamed 200 status):
        a half-open trial has proved the engine. The rest of the request counts in the new
        epoch."""
        if lease.ticket.trial and not lease.settled:
            engine = lease.engine
            engine.breaker.record(lease.ticket, Verdict.SUCCESS)
            lease.ticket = Ticket(engine.breaker.epoch, False)
            log.info("engine breaker closed engine=%s by=trial", engine.name)
            self._trial_over()

    def settle(self, lease: Lease, verdict: Verdict) -> None:
        if lease.settled:
            return
        lease.settled = True
        engine = lease.engine
        engine.in_flight -= 1
        breaker = engine.breaker
        if verdict is Verdict.FAILURE:
            self.health.count_failure(engine, lease.ticket)
        else:
            before = breaker.state
            breaker.record(lease.ticket, verdict)
            if before is not BreakerState.CLOSED and breaker.state is BreakerState.CLOSED:
                log.info("engine breaker closed engine=%s by=trial", engine.name)
        if lease.ticket.trial:
            self._trial_over()

    async def run(
        self,
        attempt: Callable[[Lease], Awaitable[T]],
        deadline: float | None = None,
        model: str | None = None,
        prefix: Prefix = NO_PREFIX,
        *,
        exclude: Sequence[Engine] = (),
        tries: int | None = None,
    ) -> tuple[Lease, T]:
        """Run ``attempt`` on an engine serving ``model`` (none of ``exclude``); while it
        fails with a retryable error, once more on each other candidate, ``tries`` times at
        most (None: every candidate).

        ``attempt`` must raise only before anything reached the client. The returned lease
        is still held: the caller settles it when the request ends.
        """
        tried: list[Engine] = list(exclude)
        left = tries
        while True:
            lease = await self.acquire_waiting(model, tried, deadline, prefix)
            try:
                return lease, await attempt(lease)
            except EngineError as exc:
                self.settle(lease, outcome_of(exc))
                tried.append(lease.engine)
                left = None if left is None else left - 1
                if not exc.retryable or left == 0 or not self._has_other(model, tried):
                    raise
                self._metrics.retries.inc()
                log.warning(
                    "retrying on another engine engine=%s error=%s", lease.engine.name, exc
                )
            except BaseException as exc:
                self.settle(lease, outcome_of(exc))
                raise

    def _has_other(self, model: str | None, tried: Sequence[Engine]) -> bool:
        return self._choose(self.candidates(model), tried) is not None
