"""The core: admission, models, and one :class:`~lkn.lifecycle.Exchange` per request.

Front-ends (REST, gRPC) only translate their protocol to :class:`GenerateRequest` and the
results back; admission, decisions, request building, retries, outcomes and metrics live
here and in :mod:`lkn.lifecycle` once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time

from lkn.config import Settings
from lkn.decision import Decider
from lkn.decision.homeostat import Load
from lkn.queues import QueueWatcher
from dataclasses import replace

from lkn.errors import LknError, TooManyRequests, Unauthorized, is_counted, mark_counted
from lkn.lifecycle import Exchange, Shape
from lkn.metrics import Metrics
from lkn.outcome import Kind, Outcome, classify
from lkn.pool import EnginePool
from lkn.requests import parse_request, requested_intervention
from lkn.types import GenerateRequest, JSONValue, Mode, ModelCard, Route

log = logging.getLogger(__name__)

#: Model-name suffixes that pick a mode, for clients that cannot send headers (Open WebUI).
VARIANT_SUFFIXES = {"+fluido": "fluido", "+analitico": "analitico"}


def _same(token: str | None, key: str | None) -> bool:
    return token is not None and key is not None and hmac.compare_digest(token.encode(),
                                                                         key.encode())


def new_request_id() -> str:
    """A fixed-length id that is never a prefix of another (SGLang aborts by rid prefix):
    128 random bits as 32 hex digits, like ``uuid4().hex`` without building a UUID."""
    return os.urandom(16).hex()


class Gateway:
    def __init__(
        self, settings: Settings, pool: EnginePool, decider: Decider, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.decider = decider
        self.metrics = metrics
        self._active = 0
        self._streams: set[Exchange] = set()
        decider.homeostat.watch(lambda: Load(self._active, settings.max_concurrency))
        self._queues: QueueWatcher | None = None
        self._cut = False

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        """Build metrics, pool and decider, and run the first readiness checks."""
        metrics = Metrics()
        pool = EnginePool.from_settings(settings, metrics)
        gateway = cls(settings, pool, Decider(settings.decision, metrics), metrics)
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
        if limits.interventions:
            return True
        return _same(token, limits.care_key)

    def stream(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """``async with gateway.stream(request) as answer: async for chunk in answer``.

        Entering returns once the engine's first chunk is in hand, or raises
        :class:`LknError` (after retries on the model's other engines)."""
        return Exchange(self, request, frontend, Shape.STREAM)

    def complete(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """``async with gateway.complete(request) as answer: answer.completion``."""
        return Exchange(self, request, frontend, Shape.COMPLETE)

    def probe(self, request: GenerateRequest, frontend: str = "rest") -> Exchange:
        """The decision a request would get, without generating: ``answer.decision``."""
        return Exchange(self, request, frontend, Shape.PROBE)

    def reject(self, frontend: str, route: str, error: BaseException, rid: str = "-") -> None:
        """Count and log a request refused before its exchange began (bad body, bad key,
        body too large); an error already counted by an exchange is left alone."""
        if is_counted(error):
            return
        outcome = classify(error)
        self._report(frontend, route, rid, "", outcome, error, None)

    # ---- admission ------------------------------------------------------------------

    def authorize(self, token: str | None) -> None:
        """Check a bearer token against ``LKN_API_KEY`` or ``LKN_CARE_API_KEY`` (no
        ``LKN_API_KEY`` configured: open)."""
        expected = self.settings.api_key
        if expected is None or _same(token, expected) or _same(token,
                                                               self.settings.client.care_key):
            return
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)",
                           code="invalid_api_key")

    def admit(self, weight: int = 1) -> int:
        """Take ``weight`` of the ``LKN_MAX_CONCURRENCY`` slots (a request for ``n`` answers
        costs ``n``; never more than the whole limit, so it can run on an idle gateway);
        returns what was taken. Raises TooManyRequests (429) when they are not free."""
        limit = self.settings.max_concurrency
        weight = max(1, min(weight, limit))
        if not self.admit_more(weight):
            raise TooManyRequests(
                f"the gateway is at its limit of {limit} concurrent requests (this one counts "
                f"{weight}); retry shortly" if weight > 1 else
                f"the gateway is at its limit of {limit} concurrent requests; retry shortly",
                retry_after=1.0,
            )
        return weight

    def admit_more(self, weight: int) -> bool:
        """Take ``weight`` more slots (also for care decided after admission: a vote's K
        answers); False, taking nothing, when they are not free."""
        if weight <= 0:
            return True
        if self._active + weight > self.settings.max_concurrency:
            return False
        self._active += weight
        self.metrics.in_flight.inc(weight)
        return True

    def leave(self, weight: int = 1) -> None:
        self._active -= weight
        self.metrics.in_flight.dec(weight)

    @property
    def active(self) -> int:
        return self._active

    def ready(self) -> bool:
        return self.pool.ready()

    # ---- models ---------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        """The engines' models, plus one variant per mode when enabled."""
        cards: list[ModelCard] = []
        seen: set[str] = set()
        for engine in self.pool.engines:
            model = engine.client.model_id
            if model is None or model in seen:
                continue
            seen.add(model)
            max_len = engine.client.max_model_len
            cards.append(ModelCard(id=model, root=model, engine_model=model, max_model_len=max_len))
            if self.settings.model_variants:
                for suffix in VARIANT_SUFFIXES:
                    cards.append(
                        ModelCard(id=model + suffix, root=model, engine_model=model,
                                  max_model_len=max_len)
                    )
        return cards

    def engine_model(self, request: GenerateRequest) -> str | None:
        """The model the engines must serve for ``request`` (its name without a mode
        variant); None when the request names none."""
        model = request.body.get("model")
        if not isinstance(model, str) or not model:
            return None
        if self.settings.model_variants:
            for suffix in VARIANT_SUFFIXES:
                if model.endswith(suffix):
                    return model[: -len(suffix)]
        return model

    def mode_override(self, request: GenerateRequest) -> str | None:
        if request.mode_override is not None:
            return request.mode_override
        model = request.body.get("model")
        if isinstance(model, str):
            for suffix, mode in VARIANT_SUFFIXES.items():
                if model.endswith(suffix):
                    return mode
        return None

    def log_prompt(self, request: GenerateRequest) -> None:
        """Prompts are private: logged only when LKN_LOG_PROMPTS is on."""
        if self.settings.log_prompts:
            field = "messages" if "messages" in request.body else "prompt"
            log.info("prompt rid=%s %s=%s", request.request_id, field,
                     json.dumps(request.body.get(field), ensure_ascii=False))

    # ---- the end of every request ---------------------------------------------------

    def finished(self, exchange: Exchange, outcome: Outcome) -> None:
        """One finished exchange: count it, log it once."""
        usage = exchange.usage
        if usage is not None:
            self.metrics.child(self.metrics.tokens, "prompt").inc(usage.prompt_tokens)
            self.metrics.child(self.metrics.tokens, "completion").inc(usage.completion_tokens)
        self._report(exchange.frontend, exchange.route, exchange.request_id, exchange.engine,
                     outcome, outcome.error, exchange)

    def loop_stopped(self, exchange: Exchange) -> None:
        """The loop guard ended an answer (counted by the engine's model)."""
        model = self.engine_model(exchange.request) or "-"
        self.metrics.child(self.metrics.loops_stopped, model).inc()

    def _report(self, frontend: str, route: str, rid: str, engine: str, outcome: Outcome,
                error: BaseException | None, exchange: Exchange | None) -> None:  # fmt: skip
        metrics = self.metrics
        metrics.child(metrics.requests, frontend, route, outcome.status).inc()
        started = exchange.started if exchange is not None else None
        elapsed_ms = 0.0
        if started is not None:
            elapsed = time.monotonic() - started
            metrics.child(metrics.duration, route).observe(elapsed)
            elapsed_ms = elapsed * 1000.0
        if outcome.kind is Kind.SUCCESS:
            if log.isEnabledFor(logging.INFO) and exchange is not None:
                decision = exchange.decision
                log.info(
                    "request rid=%s engine=%s frontend=%s route=%s mode=%s strategy=%s "
                    "signals=%s score=%s status=200 outcome=success loop=%d duration_ms=%.1f",
                    rid, engine or "-", frontend, route, decision.mode.value, decision.strategy,
                    ",".join(decision.signals) or "-", decision.score_text or "-",
                    exchange.loop_stopped, elapsed_ms,
                )
            return
        if error is not None:
            metrics.child(metrics.errors, type(error).__name__).inc()
            mark_counted(error)
        if log.isEnabledFor(outcome.level):
            log.log(
                outcome.level,
                "request rid=%s engine=%s frontend=%s route=%s status=%s outcome=%s "
                "duration_ms=%.1f error=%s message=%r",
                rid, engine or "-", frontend, route, outcome.status, outcome.kind.value,
                elapsed_ms, type(error).__name__ if error is not None else "-",
                str(error) if error is not None else "",
                exc_info=error if outcome.kind is Kind.BUG else None,
            )

    # ---- shutdown -------------------------------------------------------------------

    def opened(self, exchange: Exchange) -> None:
        self._streams.add(exchange)
        if self._cut:  # it started after the grace period ended
            exchange.interrupt()

    def closed(self, exchange: Exchange) -> None:
        self._streams.discard(exchange)

    async def drain(self, grace: float) -> None:
        """Let streams run for ``grace`` seconds, then end those still open with a shutdown
        error (REST: an error event then ``[DONE]``; gRPC: UNAVAILABLE)."""
        deadline = time.monotonic() + grace
        while self._streams and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        self._cut = True
        streams = list(self._streams)
        if streams:
            log.warning("shutdown grace over: ending open streams count=%d", len(streams))
        for exchange in streams:
            exchange.interrupt()


__all__ = ["Gateway", "LknError", "Mode", "new_request_id"]
