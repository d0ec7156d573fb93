"""The gateway as the front-ends see it: requests in, one
:class:`~lkn.exchange.Exchange` per request out.

Front-ends (REST, gRPC) only translate their protocol to :class:`GenerateRequest` and the
results back; admission, decisions, request building, retries, outcomes and metrics live
below, in :mod:`lkn.exchange` and what it uses, once.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import replace

from lkn.breaker import Clock
from lkn.config import Settings
from lkn.decision import Decider
from lkn.decision.homeostat import Load
from lkn.errors import LknError, Unauthorized
from lkn.exchange import Core, Exchange, Shape
from lkn.metrics import Metrics
from lkn.pool import EnginePool
from lkn.queues import QueueWatcher
from lkn.client_request import parse_request, requested_intervention
from lkn.values import GenerateRequest, JSONValue, Mode, ModelCard, Route


def _same(token: str | None, key: str | None) -> bool:
    return token is not None and key is not None and hmac.compare_digest(token.encode(),
                                                                         key.encode())


def new_request_id() -> str:
    """A fixed-length id that is never a prefix of another (SGLang aborts by rid prefix):
    128 random bits as 32 hex digits, like ``uuid4().hex`` without building a UUID."""
    return os.urandom(16).hex()


class Gateway:
    def __init__(self, settings: Settings, pool: EnginePool, decider: Decider,
                 metrics: Metrics, clock: Clock = time.monotonic) -> None:  # fmt: skip
        self.settings = settings
        self.pool = pool
        self.decider = decider
        self.metrics = metrics
        self.core = Core(settings, pool, decider, metrics, clock)
        admission = self.core.admission
        decider.homeostat.watch(lambda: Load(admission.active, settings.max_concurrency))
        self._queues: QueueWatcher | None = None

    @classmethod
    async def start(cls, settings: Settings, clock: Clock = time.monotonic) -> Gateway:
        """Build metrics, pool and decider, and run the first readiness checks (``clock``:
        what the pool, its breakers and every exchange read the time from)."""
        metrics = Metrics()
        pool = EnginePool.from_settings(settings, metrics, clock)
        gateway = cls(settings, pool, Decider(settings.decision, metrics), metrics, clock)
        await pool.start()
        gateway._queues = QueueWatcher(pool, gateway.decider.homeostat, settings.health_interval)
        gateway._queues.start()
        return gateway

    async def close(self) -> None:
        if self._queues is not None:
            await self._queues.close()
        await self.pool.close()

    # ---- requests -------------------------------------------------------------------

    def request(self, route: Route, body: JSONValue, request_id: str, *,
                mode: str | None = None, intervention: str | None = None,
                token: str | None = None, timeout: float | None = None) -> GenerateRequest:  # fmt: skip
        """A front-end's request as the core takes it: the body checked against the caps
        (``LKN_MAX_TOKENS_LIMIT``, ``LKN_MAX_N``, ...), and the care it names (``mode``:
        the override, ``intervention``: ``X-LKN-Intervention``) against what the client
        holding ``token`` may ask for. Raises BadRequest (400) or Forbidden (403)."""
        limits = self.settings.client
        parsed = parse_request(route, body, request_id, mode, timeout, limits,
                               self.settings.default_max_tokens)
        wanted = requested_intervention(intervention, limits, self.may_choose_care(token))
        return parsed if wanted is None else replace(parsed, intervention=wanted)

    def may_choose_care(self, token: str | None) -> bool:
        """Whether a client may name its own care: every client with
        ``LKN_CLIENT_INTERVENTIONS=on``, else only holders of ``LKN_CARE_API_KEY``."""
        limits = self.settings.client
        return limits.interventions or _same(token, limits.care_key)

    def stream(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """``async with gateway.stream(request) as answer: async for chunk in answer``.

        Entering returns once the engine's first chunk is in hand, or raises
        :class:`LknError` (after retries on the model's other engines)."""
        return Exchange(self.core, request, frontend, Shape.STREAM)

    def complete(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """``async with gateway.complete(request) as answer: answer.completion``."""
        return Exchange(self.core, request, frontend, Shape.COMPLETE)

    def decision_only(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """The decision a request would get, without generating: ``answer.decision``."""
        return Exchange(self.core, request, frontend, Shape.DECISION)

    def reject(self, frontend: str, route: str, error: BaseException, rid: str = "-") -> None:
        """Count and log a request refused before its exchange began (bad body, bad key,
        body too large); an error already counted by an exchange is left alone."""
        self.core.report.reject(frontend, route, error, rid)

    def authorize(self, token: str | None) -> None:
        """Check a bearer token against ``LKN_API_KEY`` or ``LKN_CARE_API_KEY`` (no
        ``LKN_API_KEY`` configured: open)."""
        expected = self.settings.api_key
        if expected is None or _same(token, expected) or _same(token,
                                                               self.settings.client.care_key):
            return
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)",
                           code="invalid_api_key")

    # ---- state ----------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Admission slots in use."""
        return self.core.admission.active

    def ready(self) -> bool:
        return self.pool.ready()

    def models(self) -> list[ModelCard]:
        """The engines' models, plus one variant per mode when enabled."""
        return self.core.models.cards(engine.client for engine in self.pool.engines)

    def engine_model(self, request: GenerateRequest) -> str | None:
        return self.core.models.engine_model(request)

    async def drain(self, grace: float) -> None:
        """Let streams run for ``grace`` seconds, then end those still open with a shutdown
        error (REST: an error event then ``[DONE]``; gRPC: UNAVAILABLE)."""
        await self.core.streams.drain(grace)


__all__ = ["Gateway", "LknError", "Mode", "new_request_id"]
