"""Speculative FLUIDO: the generation itself is the entropy probe.

For the ``entropy`` and ``hybrid`` strategies the client's request is sent to the engine at
once, untouched, asking for top-K logprobs. :class:`HeldGeneration` stands in for the engine
while the decider decides: when the decider probes, it holds the generation's first
``LKN_PROBE_TOKENS`` tokens and hands their logprobs over as the probe's answer. Then:

* FLUIDO: the held chunks are released, in order and once, and the stream goes on (no second
  engine request, no second prefill);
* ANALITICO whose intervention leaves the engine body as it is (careful sampling for a
  client that set its own sampling fields): released as FLUIDO is, since a restart would
  ask the engine the same question again;
* ANALITICO otherwise: the held engine request is dropped (closing it aborts its rid) and the
  ANALITICO request is started, with the instruction placed after the conversation so the
  engine's cached prefix (everything the first request prefilled) stays valid: by default
  as the start of the answer, which the engine continues; where the engine rejects a body
  (a 4xx before any token), the next placement (see :func:`lkn.care.restart_bodies.restart_bodies`).

A decision the decider makes without probing (housekeeping, override, shedding, hybrid's
rules) starts nothing early: the request then goes out as it always did. Logprobs the client
did not ask for are stripped from every chunk. Requests it cannot hold safely (``n`` > 1,
non-streamed tool calls, fewer than two logprobs asked for by the client) use the separate
probe. Non-streamed requests are streamed from the engine and put back together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from lkn.config import DecisionSettings
from lkn.decision.strategies import strategy_named
from lkn.engines import EngineClient
from lkn.engines.base import DelegatingEngine
from lkn.engines.wire import probe_positions
from lkn.errors import EngineRejected, LknError
from lkn.care.restart_bodies import PlacedBody, restart_bodies
from lkn.engines.rebuild import assemble, strip_logprobs, token_texts
from lkn.values import (
    Chunk, Decision, GenerateRequest, JSONObject, Mode, ProbeResult, Route, TopToken,
)

#: The engine rids of the held request and of its ANALITICO restart. Neither is a prefix of
#: the other, so aborting the held one (SGLang aborts by rid prefix) spares the restart.
HELD_SUFFIX, RESTART_SUFFIX = "-h", "-r"

BodyFor = Callable[[Decision], JSONObject]

log = logging.getLogger("lkn.request")


def _client_top_k(request: GenerateRequest) -> int | None:
    """How many alternatives the client itself asked for (None: it asked for no logprobs)."""
    body = request.body
    if request.route is Route.CHAT:
        if body.get("logprobs") is not True:
            return None
        top = body.get("top_logprobs")
        return top if isinstance(top, int) else 0
    value = body.get("logprobs")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def holdable(request: GenerateRequest, settings: DecisionSettings) -> bool:
    """Whether this request's own generation can be its probe."""
    body = request.body
    if not settings.speculative or body.get("n") not in (None, 1):
        return False
    if not request.stream and body.get("tools"):
        return False
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) > 1 and not isinstance(prompt[0], int):
        return False
    top = _client_top_k(request)
    return top is None or top >= 2


def hold(
    client: EngineClient,
    request: GenerateRequest,
    settings: DecisionSettings,
    deadline: float | None,
) -> HeldGeneration | None:
    """A held generation for the engine's decision step, when the strategy probes and the
    request can be held; None otherwise (the request goes out as it always did)."""
    if settings.mode == "passthrough" or not strategy_named(settings.strategy).probes:
        return None
    if not holdable(request, settings):
        return None
    return HeldGeneration(client, request, settings, deadline)


class HeldGeneration(DelegatingEngine):
    """The engine, as the decider and the request lifecycle see it during one request."""

    def __init__(
        self,
        client: EngineClient,
        request: GenerateRequest,
        settings: DecisionSettings,
        deadline: float | None,
    ) -> None:
        super().__init__(client)
        self.request = request
        self.settings = settings
        self.deadline = deadline
        self.enabled = holdable(request, settings)
        client_top = _client_top_k(request)
        self._strip = client_top is None
        self._top_k = client_top if client_top is not None else settings.probe_top_k
        self._tokens = settings.probe_tokens
        self._held: list[Chunk] = []
        self._positions: list[tuple[TopToken, ...]] = []
        self._chosen: list[str] = []
        self._ended = False
        self._error: LknError | None = None
        self._stream: AsyncIterator[Chunk] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._started = 0.0
        #: Whether the decider probed (then the engine request is under way).
        self.probed = False
        #: How the request went: "fresh", "released" or "restarted".
        self.path = "fresh"
        #: Where the restart that answered put the instruction (None: no instruction moved).
        self.placement: str | None = None

    # ---- what the decider sees ------------------------------------------------------

    async def close(self) -> None:
        await self.aclose()

    async def probe(self, route: Route, body: JSONObject, rid: str, top_k: int, tokens: int,
                    deadline: float | None = None) -> ProbeResult:  # fmt: skip
        """The held generation's first tokens, as a probe's answer."""
        if not self.enabled:
            return await self.client.probe(route, body, rid, top_k, tokens, deadline)
        self.probed = True
        if self._collector is None:
            self._start()
        assert self._collector is not None
        # Shielded: a probe budget running out must not cancel the generation itself.
        await asyncio.shield(self._collector)
        if self._error is not None:
            raise self._error
        return ProbeResult(
            positions=tuple(self._positions[: self._tokens]),
            latency_ms=(time.perf_counter() - self._started) * 1000.0,
            engine=self.client.name,
            chosen=tuple(self._chosen[: self._tokens]),
        )

    def _start(self) -> None:
        request = self.request
        body = dict(request.body)
        if request.route is Route.CHAT:
            body.update(logprobs=True, top_logprobs=self._top_k)
        else:
            body["logprobs"] = self._top_k
        body.update(stream=True, stream_options={"include_usage": True})
        self._started = time.perf_counter()
        self._stream = self.client.stream(
            request.route, body, request.request_id + HELD_SUFFIX, self.deadline
        )
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        """Read until the first ``tokens`` tokens are in hand (or the answer ended)."""
        assert self._stream is not None
        try:
            while len(self._positions) < self._tokens:
                try:
                    chunk = await self._stream.__anext__()
                except StopAsyncIteration:
                    self._ended = True
                    return
                self._held.append(chunk)
                self._note(chunk)
                if chunk.finish_reason is not None:
                    return
        except LknError as exc:
            self._error = exc

    def _note(self, chunk: Chunk) -> None:
        if b'"logprobs"' not in chunk.raw:
            return
        event = json.loads(chunk.raw)
        if isinstance(event, dict):
            self._positions.extend(probe_positions(event))
            self._chosen.extend(token_texts(event))

    # ---- what the request lifecycle sees ----------------------------------------------

    async def open_stream(self, decision: Decision, body_for: BodyFor) -> AsyncIterator[Chunk]:
        """The chunks the client gets for ``decision`` (``body_for`` builds engine bodies)."""
        request = self.request
        if self.probed and await self._keep(decision, body_for):
            self.path = "released"
            return self._release()
        if self.probed:
            self.path = "restarted"
            return self._restarted(restart_bodies(request, decision, body_for, self.settings))
        return self.client.stream(request.route, body_for(decision), request.request_id,
                                  self.deadline)  # fmt: skip

    async def open_complete(
        self, decision: Decision, body_for: BodyFor, answered: Callable[[], None] | None = None
    ) -> tuple[bytes, JSONObject]:
        """The non-streamed answer for ``decision``."""
        request = self.request
        if self.probed and await self._keep(decision, body_for):
            self.path = "released"
            if answered is not None:
                answered()
            chunks = [chunk async for chunk in self._release()]
            return assemble(request, chunks, keep_logprobs=not self._strip)
        if not self.probed:
            return await self.client.complete(request.route, body_for(decision),
                                              request.request_id, self.deadline, answered)
        self.path = "restarted"
        bodies = restart_bodies(request, decision, body_for, self.settings)
        rid = request.request_id + RESTART_SUFFIX
        for placement, body in bodies[:-1]:
            try:
                answer = await self.client.complete(request.route, body, rid, self.deadline,
                                                    answered)
            except EngineRejected as exc:
                self._rejected(exc)
                continue
            self.placement = placement
            return answer
        placement, body = bodies[-1]
        answer = await self.client.complete(request.route, body, rid, self.deadline, answered)
        self.placement = placement
        return answer

    async def _restarted(self, bodies: list[PlacedBody]) -> AsyncIterator[Chunk]:
        """The restart's stream: the first body the engine takes (see :func:`restart_bodies`);
        a rejection can only come before the first chunk, so nothing is sent twice."""
        request = self.request
        rid = request.request_id + RESTART_SUFFIX
        for index, (placement, body) in enumerate(bodies):
            stream = self.client.stream(request.route, body, rid, self.deadline)
            try:
                try:
                    first = await anext(stream)
                except StopAsyncIteration:
                    return
                except EngineRejected as exc:
                    if index + 1 == len(bodies):
                        raise
                    self._rejected(exc)
                    continue
                self.placement = placement
                yield first
                async for chunk in stream:
                    yield chunk
                return
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

    def _rejected(self, exc: EngineRejected) -> None:
        # The engine's message is not logged: it can quote the request back.
        log.info("restart placement rejected rid=%s engine=%s upstream_status=%s "
                 "retry=next_placement", self.request.request_id, exc.engine, exc.upstream_status)
        self.path = "restarted-fallback"

    async def _keep(self, decision: Decision, body_for: BodyFor) -> bool:
        """Whether the held generation is the answer; drops it when it is not."""
        assert self._collector is not None
        unchanged = not decision.applied or decision.mode is Mode.FLUIDO or (
            body_for(decision) == body_for(replace(decision, applied=False)))
        if unchanged:
            await self._collector  # a probe that ran out of budget: the tokens still come
            if self._error is None:
                return True
        await self.aclose()
        return False

    async def _release(self) -> AsyncIterator[Chunk]:
        """The held chunks once, in order, then the rest of the engine's stream."""
        assert self._stream is not None
        try:
            held, self._held = self._held, []
            for chunk in held:
                yield self._clean(chunk)
            if self._ended:
                return
            async for chunk in self._stream:
                yield self._clean(chunk)
        finally:
            await self.aclose()

    def _clean(self, chunk: Chunk) -> Chunk:
        if not self._strip or b'"logprobs"' not in chunk.raw:
            return chunk
        return replace(chunk, raw=strip_logprobs(chunk.raw))

    async def aclose(self) -> None:
        """Drop the held engine request if it is still open (its rid is aborted)."""
        collector, stream = self._collector, self._stream
        if collector is not None and not collector.done():
            collector.cancel()
            try:
                await collector
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise
        if stream is not None:
            self._stream = None
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
