"""The core: validate -> decide -> generate through the pool -> typed results.

Front-ends (REST, gRPC) only translate their protocol to :class:`GenerateRequest` and the
results back; admission, decisions, request building, retries and metrics live here once.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator

from lkn.config import Settings
from lkn.decision import Decider
from lkn.engines import EngineClient
from lkn.errors import (
    DeadlineExceeded,
    EngineError,
    LknError,
    TooManyRequests,
    Unauthorized,
)
from lkn.generation import Generation
from lkn.metrics import Metrics
from lkn.pool import EnginePool, Lease, Outcome
from lkn.types import (
    Chunk,
    Completion,
    Decision,
    GenerateRequest,
    JSONObject,
    Mode,
    ModelCard,
)
from lkn.engines.wire import parse_completion

log = logging.getLogger(__name__)

#: Model-name suffixes that pick a mode, for clients that cannot send headers (Open WebUI).
VARIANT_SUFFIXES = {"+fluido": "fluido", "+analitico": "analitico"}


def new_request_id() -> str:
    """A fixed-length id that is never a prefix of another (SGLang aborts by rid prefix)."""
    return uuid.uuid4().hex


class Gateway:
    def __init__(
        self, settings: Settings, pool: EnginePool, decider: Decider, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.decider = decider
        self.metrics = metrics
        self._active = 0

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        """Build metrics, pool and decider, and run the first readiness checks."""
        metrics = Metrics()
        pool = EnginePool.from_settings(settings, metrics)
        gateway = cls(settings, pool, Decider(settings.decision, metrics), metrics)
        await pool.start()
        return gateway

    async def close(self) -> None:
        await self.pool.close()

    # ---- admission ------------------------------------------------------------------

    def authorize(self, token: str | None) -> None:
        """Check a bearer token against ``LKN_API_KEY`` (no key configured: open)."""
        expected = self.settings.api_key
        if expected is None:
            return
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)",
                               code="invalid_api_key")

    def _admit(self) -> None:
        if self._active >= self.settings.max_concurrency:
            raise TooManyRequests(
                f"the gateway is at its limit of {self.settings.max_concurrency} concurrent "
                "requests; retry shortly",
                retry_after=1.0,
            )
        self._active += 1
        self.metrics.in_flight.inc()

    def _leave(self) -> None:
        self._active -= 1
        self.metrics.in_flight.dec()

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

    def _mode_override(self, request: GenerateRequest) -> str | None:
        if request.mode_override is not None:
            return request.mode_override
        model = request.body.get("model")
        if isinstance(model, str):
            for suffix, mode in VARIANT_SUFFIXES.items():
                if model.endswith(suffix):
                    return mode
        return None

    # ---- decisions and engine requests ----------------------------------------------

    def _log_prompt(self, request: GenerateRequest) -> None:
        """Prompts are private: logged only when LKN_LOG_PROMPTS is on."""
        if self.settings.log_prompts:
            field = "messages" if "messages" in request.body else "prompt"
            log.info("prompt rid=%s %s=%s", request.request_id, field,
                     json.dumps(request.body.get(field), ensure_ascii=False))

    def _deadline(self, request: GenerateRequest) -> float | None:
        return None if request.timeout is None else time.monotonic() + request.timeout

    async def _decide(
        self, request: GenerateRequest, engine: EngineClient | None, deadline: float | None
    ) -> Decision:
        return await self.decider.decide(
            request, engine, deadline, override=self._mode_override(request)
        )

    def _engine_body(self, request: GenerateRequest, decision: Decision) -> JSONObject:
        """What the engine gets; the engine client adds the rid and its model name."""
        body = self.decider.apply(decision, request.body)
        if request.stream:
            options = body.get("stream_options")
            merged: JSONObject = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True
            body = {**body, "stream_options": merged}
        return body

    def _log_done(
        self,
        frontend: str,
        request: GenerateRequest,
        engine: str,
        outcome: str,
        started: float,
        error: BaseException | None = None,
    ) -> None:
        route = request.route.label
        elapsed = time.monotonic() - started
        self.metrics.child(self.metrics.requests, frontend, route, outcome).inc()
        self.metrics.child(self.metrics.duration, route).observe(elapsed)
        if error is not None:
            log.warning(
                "request failed rid=%s engine=%s frontend=%s route=%s error=%s status=%s "
                "message=%r",
                request.request_id, engine or "-", frontend, route, type(error).__name__,
                error.status() if isinstance(error, LknError) else 500, str(error),
            )
        else:
            log.info(
                "request done rid=%s engine=%s frontend=%s route=%s status=%s duration_ms=%.1f",
                request.request_id, engine or "-", frontend, route, outcome, elapsed * 1000.0,
            )

    def _error_outcome(self, exc: BaseException) -> str:
        if isinstance(exc, LknError):
            self.metrics.child(self.metrics.errors, type(exc).__name__).inc()
            return str(exc.status())
        return "500"

    def _map_deadline(self, exc: EngineError, deadline: float | None) -> LknError:
        if deadline is not None and time.monotonic() >= deadline - 0.001:
            return DeadlineExceeded("the request deadline expired before the engine answered")
        return exc

    async def decide_only(self, request: GenerateRequest) -> Decision:
        """The decision a request would get, without generating (probe endpoints)."""
        deadline = self._deadline(request)
        if not self.decider.needs_engine:
            return await self._decide(request, None, deadline)

        async def attempt(lease: Lease) -> Decision:
            return await self._decide(request, lease.engine.client, deadline)

        lease, decision = await self.pool.run(attempt, deadline)
        self.pool.settle(lease, Outcome.SUCCESS)
        return decision

    async def complete(self, request: GenerateRequest, frontend: str = "rest") -> Completion:
        """One non-streamed answer; raises :class:`LknError` on any failure."""
        started = time.monotonic()
        self._admit()
        self._log_prompt(request)
        deadline = self._deadline(request)
        engine_name = ""
        try:
            async def attempt(lease: Lease) -> Completion:
                client = lease.engine.client
                decision = await self._decide(request, client, deadline)
                body = self._engine_body(request, decision)
                try:
                    raw, parsed = await client.complete(
                        request.route, body, request.request_id, deadline
                    )
                except EngineError as exc:
                    raise self._map_deadline(exc, deadline) from None
                text, finish, usage = parse_completion(parsed)
                return Completion(raw, text, finish, usage, decision, client.name,
                                  request.request_id)

            lease, completion = await self.pool.run(
                attempt, deadline, self.pool.placement.prefix(request.body)
            )
            engine_name = lease.engine.name
            self.pool.settle(lease, Outcome.SUCCESS)
        except BaseException as exc:
            self._log_done(frontend, request, engine_name, self._error_outcome(exc), started,
                           exc if isinstance(exc, Exception) else None)
            raise
        finally:
            self._leave()
        self.metrics.child(self.metrics.ttft, request.route.label).observe(time.monotonic() - started)
        self._count_tokens(completion)
        self._log_done(frontend, request, engine_name, "200", started)
        return completion

    def _count_tokens(self, result: Completion | Generation) -> None:
        usage = result.usage
        if usage is not None:
            self.metrics.child(self.metrics.tokens, "prompt").inc(usage.prompt_tokens)
            self.metrics.child(self.metrics.tokens, "completion").inc(usage.completion_tokens)

    async def open_stream(self, request: GenerateRequest, frontend: str = "rest") -> Generation:
        """Start a streamed answer; returns once the engine's first chunk is in hand.

        Raises :class:`LknError` for anything that fails before that (after one retry on
        another engine). The caller iterates the result and must ``aclose()`` it.
        """
        started = time.monotonic()
        self._admit()
        self._log_prompt(request)
        deadline = self._deadline(request)
        route = request.route.label

        async def attempt(lease: Lease) -> tuple[Decision, Chunk, AsyncGenerator[Chunk, None]]:
            client = lease.engine.client
            decision = await self._decide(request, client, deadline)
            body = self._engine_body(request, decision)
            chunks = client.stream(request.route, body, request.request_id, deadline)
            assert isinstance(chunks, AsyncGenerator)
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                raise EngineError(f"engine {client.name} sent an empty stream",
                                  engine=client.name) from None
            except EngineError as exc:
                raise self._map_deadline(exc, deadline) from None
            except BaseException:
                await chunks.aclose()
                raise
            self.pool.confirm(lease)
            return decision, first, chunks

        try:
            lease, (decision, first, rest) = await self.pool.run(
                attempt, deadline, self.pool.placement.prefix(request.body)
            )
        except BaseException as exc:
            self._leave()
            self._log_done(frontend, request, "", self._error_outcome(exc), started,
                           exc if isinstance(exc, Exception) else None)
            raise
        self.metrics.child(self.metrics.ttft, route).observe(time.monotonic() - started)

        def finish(gen: Generation, outcome: Outcome, error: BaseException | None) -> None:
            self.pool.settle(lease, outcome)
            self._leave()
            self._count_tokens(gen)
            if error is not None:
                if isinstance(error, EngineError):
                    error = self._map_deadline(error, deadline)
                status = self._error_outcome(error)
            else:
                status = "200" if outcome is Outcome.SUCCESS else "499"
            self._log_done(frontend, request, lease.engine.name, status, started, error)

        return Generation(
            request_id=request.request_id,
            engine=lease.engine.name,
            decision=decision,
            first=first,
            rest=rest,
            include_usage=request.include_usage,
            finish=finish,
        )


__all__ = ["Gateway", "Mode", "new_request_id"]
