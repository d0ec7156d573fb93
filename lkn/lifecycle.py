"""One request's life, from admission to the last byte: :class:`Exchange`.

Every front-end uses it the same way::

    async with gateway.stream(request, "rest") as answer:   # streamed
        async for chunk in answer: ...
    async with gateway.complete(request, "grpc") as answer:  # non-streamed
        answer.completion
    async with gateway.probe(request, "rest") as answer:     # decision only
        answer.decision

On entry: admission (``LKN_MAX_CONCURRENCY``), the model's engines, then pool attempts with
a retry before the first byte. One attempt is: the decision step (:meth:`Exchange.decide`),
the engine body (:meth:`Exchange.engine_body`), the engine call, and the first chunk (or, for
a non-streamed answer, the engine's 200 status line), which confirms a half-open trial.
Between the engine and the front-end the chunks pass through :meth:`Exchange.__anext__`,
which turns a stream cut short (no finish reason) into an engine error.

On exit, whatever happened (success, an error before or after the first byte, the client
leaving, cancellation, a bug in a front-end): the outcome is classified once by
:func:`lkn.outcome.classify`, then the lease is settled, admission released, one metric
incremented and one log line written that names the engine. Exceptions a front-end reports
itself (a mid-stream error turned into an SSE event) are recorded with :meth:`Exchange.fail`.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import replace
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING

from lkn.breaker import Verdict
from lkn.decision import consistency, vote_stream
from lkn.engines import EngineClient
from lkn.engines.base import DelegatingEngine
from lkn.engines.wire import parse_completion
from lkn.loopguard import LoopGuard
from lkn.errors import DeadlineExceeded, EngineError, EngineTimeout, LknError, ShuttingDown
from lkn.outcome import CLIENT_GONE_ERRORS, Kind, Outcome, classify
from lkn.pool import Lease
from lkn.restart import assemble
from lkn.resume import Resume
from lkn.speculative import HeldGeneration, hold
from lkn.types import (
    PASSTHROUGH,
    Chunk,
    Completion,
    Decision,
    GenerateRequest,
    JSONObject,
    ProbeResult,
    Route,
    Usage,
)

if TYPE_CHECKING:
    from lkn.gateway import Gateway

log = logging.getLogger("lkn.request")


class Shape(enum.Enum):
    STREAM = "stream"
    COMPLETE = "complete"
    PROBE = "probe"


class _ObservedEngine(DelegatingEngine):
    """The engine as the decision step sees it, remembering how a probe on it ended (so a
    probe request settles its lease by the probe's real outcome)."""

    def __init__(self, client: EngineClient) -> None:
        super().__init__(client)
        self.probed = False
        self.error: BaseException | None = None

    async def probe(
        self,
        route: Route,
        body: JSONObject,
        rid: str,
        top_k: int,
        tokens: int,
        deadline: float | None = None,
    ) -> ProbeResult:
        self.probed = True
        try:
            return await self.client.probe(route, body, rid, top_k, tokens, deadline)
        except BaseException as exc:
            self.error = exc
            raise


class Exchange:
    """One request, from admission to the last byte. Use it as an async context manager;
    a streamed one is also an async iterator of chunks."""

    def __init__(self, gateway: Gateway, request: GenerateRequest, frontend: str,
                 shape: Shape) -> None:  # fmt: skip
        self.gateway = gateway
        budget = gateway.settings.default_max_tokens
        if budget and request.body.get("max_tokens") is None \
                and request.body.get("max_completion_tokens") is None:
            # No budget from the client: LKN_DEFAULT_MAX_TOKENS, on every path to the engine
            # (the held generation, its restart, the vote and the plain request alike).
            request = replace(request, body={**request.body, "max_tokens": budget})
        self.request = request
        self.frontend = frontend
        self.shape = shape
        self.request_id = request.request_id
        self.decision: Decision = PASSTHROUGH
        self.completion: Completion | None = None
        self.lease: Lease | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.outcome: Outcome | None = None
        self.started = time.monotonic()
        self._deadline = None if request.timeout is None else self.started + request.timeout
        self._admitted = 0  # admission slots held (a request for n answers holds n)
        self._engine = ""
        self._error: BaseException | None = None
        self._pending: Chunk | None = None
        self._rest: AsyncIterator[Chunk] | None = None
        self._finished = False
        self._probe: _ObservedEngine | None = None
        self._interrupted = False
        self._waiting: asyncio.Task[object] | None = None
        self._resume = (
            Resume.of(request, gateway.settings.resume, gateway.settings.resume_attempts)
            if shape is Shape.STREAM else None
        )
        settings = gateway.settings
        self._guard = LoopGuard(settings.loop) if settings.loop_guard and guardable(
            request, shape) else None
        #: Whether the loop guard ended the answer; whether it was a consistency vote.
        self.loop_stopped = False
        self.voted = False

    @property
    def route(self) -> str:
        """The route label it is counted under (``probe`` for a decision only)."""
        return "probe" if self.shape is Shape.PROBE else self.request.route.label

    @property
    def engine(self) -> str:
        """The engine serving the request, or the last one tried ("" before any)."""
        return self._engine

    @property
    def deadline(self) -> float | None:
        return self._deadline

    # ---- entry ------------------------------------------------------------------------

    async def __aenter__(self) -> Exchange:
        gateway = self.gateway
        try:
            self._admitted = gateway.admit(
                gateway.decider.chooser.weight(self.request.body, self.request.intervention))
            gateway.log_prompt(self.request)
            model = gateway.engine_model(self.request)
            if self.shape is Shape.PROBE and not gateway.decider.needs_engine:
                gateway.pool.candidates(model)  # an unknown model is still 404
                self.decision = await self.decide(None)
                return self
            if self.shape is Shape.STREAM:
                # From entry: a shutdown also ends a stream still waiting for its first byte
                # (a vote, a held generation), with its error event and [DONE].
                gateway.opened(self)
            await self._first_byte(model)
            if self.shape is not Shape.PROBE:
                ttft = time.monotonic() - self.started
                gateway.metrics.child(gateway.metrics.ttft, self.route).observe(ttft)
                if self.shape is Shape.STREAM and not self.voted:
                    # A vote's first token waits for all K answers: that is the care's cost,
                    # not the engines' load, so it does not feed the shedder.
                    gateway.decider.homeostat.observe_ttft(ttft)
        except BaseException as exc:
            self._end(exc)
            raise
        return self

    async def _first_byte(self, model: str | None) -> None:
        """The pool's attempts up to the first byte; the end of the shutdown grace period
        interrupts them with a shutdown error."""
        pool = self.gateway.pool
        if self._interrupted:
            raise _cut_at_shutdown()
        self._waiting = asyncio.current_task()
        try:
            self.lease, _ = await pool.run(
                self._attempt, self._deadline, model, pool.placement.prefix(self.request.body)
            )
        except asyncio.CancelledError:
            if self._cut_by_shutdown():
                raise _cut_at_shutdown() from None
            raise
        finally:
            self._waiting = None

    async def _attempt(self, lease: Lease) -> None:
        """One try on one engine, up to the first byte; raises only before it."""
        client: EngineClient = lease.engine.client
        self._engine = client.name
        if self.shape is Shape.PROBE:
            self._probe = _ObservedEngine(client)
            self.decision = await self.decide(self._probe)
            return
        # entropy/hybrid: the generation itself may be the probe (lkn.speculative).
        held = hold(client, self.request, self.gateway.settings.decision, self._deadline)
        try:
            self.decision = await self.decide(held or client)
        except BaseException:
            if held is not None:
                await held.aclose()
            raise
        request = self.request
        if self.gateway.decider.chooser.votes(self.decision, request.body) and self._afford_vote():
            if held is not None:  # the vote is a request of its own (on the cached prefix)
                await held.aclose()
            await self._vote(client, lease)
            return
        if self.shape is Shape.COMPLETE:
            pool = self.gateway.pool
            try:
                if self._guard is not None:  # streamed from the engine, under the guard
                    raw, parsed = await self._guarded(client, held, lambda: pool.confirm(lease))
                elif held is not None:
                    raw, parsed = await held.open_complete(
                        self.decision, self.engine_body, answered=lambda: pool.confirm(lease)
                    )
                else:
                    raw, parsed = await client.complete(
                        request.route, self.engine_body(self.decision), self.request_id,
                        self._deadline, answered=lambda: pool.confirm(lease),
                    )
            except EngineError as exc:
                raise self._map_deadline(exc) from None
            self._note_placement(held)
            text, finish, usage = parse_completion(parsed)
            self.usage, self.finish_reason = usage, finish
            self.completion = Completion(raw, text, finish, usage, self.decision, client.name,
                                         self.request_id)  # fmt: skip
            return
        try:
            if held is not None:
                chunks = await held.open_stream(self.decision, self.engine_body)
            else:
                chunks = client.stream(request.route, self.engine_body(self.decision),
                                       self.request_id, self._deadline)  # fmt: skip
        except BaseException:
            if held is not None:
                await held.aclose()
            raise
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise EngineError(f"engine {client.name} sent an empty stream",
                              engine=client.name) from None
        except EngineError as exc:
            raise self._map_deadline(exc) from None
        except BaseException:
            await _close(chunks)
            raise
        self.gateway.pool.confirm(lease)
        self._note_placement(held)
        self._pending, self._rest = first, chunks

    async def _guarded(self, client: EngineClient, held: HeldGeneration | None,
                       answered: Callable[[], None]) -> tuple[bytes, JSONObject]:  # fmt: skip
        """A non-streamed answer read as a stream, so that the loop guard can end it (its
        first chunk confirms a half-open trial, as a plain answer's status line does)."""
        def body_for(decision: Decision) -> JSONObject:
            return {**self.engine_body(decision), "stream": True}

        request, guard = self.request, self._guard
        assert guard is not None
        chunks = (await held.open_stream(self.decision, body_for) if held is not None else
                  client.stream(request.route, body_for(self.decision), self.request_id,
                                self._deadline))  # fmt: skip
        collected: list[Chunk] = []
        try:
            async for chunk in chunks:
                if not collected:
                    answered()
                collected.append(chunk)
                if chunk.text and chunk.finish_reason is None and guard.feed(chunk.text):
                    self.loop_stopped = True
                    break
        except LknError:
            if not any(c.finish_reason is not None for c in collected):
                raise  # cut before its finish: an engine failure, tried again elsewhere
        finally:
            await _close(chunks)
        raw, parsed = assemble(request, collected, keep_logprobs=bool(request.body.get("logprobs")))
        if self.loop_stopped:
            choices = parsed.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                choices[0].update(finish_reason="length", matched_stop=None)
            raw = json.dumps(parsed, ensure_ascii=False).encode()
            self.gateway.loop_stopped(self)
        return raw, parsed

    def _afford_vote(self) -> bool:
        """A vote holds one admission slot per answer: when they are not free, the vote is
        shed to the instruction (said in the policy and ``X-LKN-Shed``)."""
        chooser = self.gateway.decider.chooser
        k = chooser.parse(self.decision.intervention).consistency
        if self.gateway.admit_more(k - self._admitted):
            self._admitted = max(self._admitted, k)
            return True
        self.decision = chooser.without_vote(self.decision, f"no room for {k} answers")
        return False

    def _note_placement(self, held: HeldGeneration | None) -> None:
        """A restart that moved the instruction says where, beside the policy (headers,
        gRPC and the probe's answer carry it)."""
        if held is not None and held.placement is not None:
            self.decision = replace(self.decision, policy=f"{self.decision.policy or '-'}; "
                                    f"restart {held.placement}")

    async def _vote(self, client: EngineClient, lease: Lease) -> None:
        """consistency: K answers in one non-streamed engine request, the agreed one kept
        (streamed after the vote; SSE keep-alives cover the wait)."""
        request, pool = self.request, self.gateway.pool
        self.voted = True
        body = {k: v for k, v in self.gateway.decider.apply(self.decision, request.body).items()
                if k not in ("stream", "stream_options")}
        try:
            _, parsed = await client.complete(request.route, body, self.request_id,
                                              self._deadline, answered=lambda: pool.confirm(lease))
        except EngineError as exc:
            raise self._map_deadline(exc) from None
        answer, result = consistency.decide(parsed, request.route, client.name,
                                            bool(request.body.get("logprobs")))
        # The vote's budget per answer (LKN_CONSISTENCY_MAX_TOKENS) is said, never silent.
        budget = body.get("max_tokens")
        lowered = f", max_tokens {budget}" if budget != request.body.get("max_tokens") else ""
        self.decision = replace(self.decision, policy=f"{self.decision.policy or '-'}; "
                                f"vote {result.agreeing}/{result.usable}{lowered}")
        text, finish, usage = parse_completion(answer)
        if self.shape is Shape.COMPLETE:
            self.usage, self.finish_reason = usage, finish
            raw = json.dumps(answer, ensure_ascii=False).encode()
            self.completion = Completion(raw, text, finish, usage, self.decision, client.name,
                                         self.request_id)  # fmt: skip
            return
        chunks = vote_stream.as_chunks(answer, request.route, usage)
        self._pending, self._rest = chunks[0], _replay(chunks[1:])

    # ---- extension points ---------------------------------------------------------------

    async def decide(self, engine: EngineClient | None) -> Decision:
        """The decision step: how much care this request gets (``engine`` will generate)."""
        gateway = self.gateway
        return await gateway.decider.decide(
            self.request, engine, self._deadline, override=gateway.mode_override(self.request)
        )

    def engine_body(self, decision: Decision) -> JSONObject:
        """What the engine gets; the engine client adds the rid and its model name."""
        body = self.gateway.decider.apply(decision, self.request.body)
        if self.request.stream or self._guard is not None:
            options = body.get("stream_options")
            merged: JSONObject = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True
            if self._guard is not None and (not self.request.stream or self.frontend != "rest"):
                # Usage on every chunk, so that an answer the guard ends still has its own;
                # only where the gateway renders the answer itself (a rebuilt non-streamed
                # answer, gRPC): REST stream chunks go to the client as they are, and Open
                # WebUI adds up usage it finds on every chunk.
                merged["continuous_usage_stats"] = True
            body = {**body, "stream_options": merged}
        return body

    def _map_deadline(self, exc: EngineError) -> LknError:
        if self._deadline_passed():
            return DeadlineExceeded("the request deadline expired before the engine answered")
        return exc

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline - 0.001

    # ---- the chunk stream between engine and front-end ---------------------------------

    def __aiter__(self) -> Exchange:
        return self

    async def __anext__(self) -> Chunk:
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
            else:
                if self._finished or self._rest is None:
                    raise StopAsyncIteration
                if self._interrupted:
                    raise self._stop(_cut_at_shutdown())
                self._waiting = asyncio.current_task()
                try:
                    chunk = await self._rest.__anext__()
                except StopAsyncIteration:
                    if self.finish_reason is None:
                        cut = EngineError(
                            f"engine {self.engine} ended the stream without a finish reason",
                            engine=self.engine)  # fmt: skip
                        if await self._resumed(cut):
                            continue
                        self._finished = True
                        raise self._stop(cut) from None
                    self._finished = True
                    raise
                except LknError as exc:
                    if self._whole():  # its finish came: the end of the connection is harmless
                        self._finished = True
                        raise StopAsyncIteration from None
                    if await self._resumed(exc):
                        continue
                    raise self._stop(exc) from None
                except asyncio.CancelledError:
                    if self._cut_by_shutdown():
                        raise self._stop(_cut_at_shutdown()) from None
                    raise
                except Exception as exc:  # a bug between engine and front-end
                    raise self._stop(exc) from None
                finally:
                    self._waiting = None
            if chunk.usage is not None:
                self.usage = chunk.usage
            if chunk.finish_reason is not None:
                self.finish_reason = chunk.finish_reason
            # The engine is always asked for usage; the client only sees it if it asked.
            if chunk.usage_only and not self.request.include_usage:
                continue
            if self._resume is not None:
                self._resume.note(chunk)
            guard = self._guard
            if guard is not None and chunk.text and self.finish_reason is None \
                    and guard.feed(chunk.text) is not None:
                await self._end_loop(chunk)
            return chunk

    async def _end_loop(self, last: Chunk) -> None:
        """The answer repeats itself: the engine request is dropped at once (its rid is
        aborted) and the answer ends after ``last`` with finish ``length``, the finish a
        client already knows as "cut before its natural end". What was sent stays."""
        self.loop_stopped = True
        self.finish_reason = "length"
        if self._rest is not None:
            rest, self._rest = self._rest, None
            await _close(rest)
        route = self.request.route
        tail = [Chunk(raw=loop_finish_event(last.raw, route), finish_reason="length")]
        if self.usage is not None:  # the engine's running count (continuous usage)
            tail.append(Chunk(raw=loop_usage_event(last.raw, route, self.usage),
                              usage=self.usage, usage_only=True))
        self._rest = _replay(tail)
        self.gateway.loop_stopped(self)

    def _whole(self) -> bool:
        """Whether the answer is complete: its (one) choice has sent its finish chunk."""
        return self.finish_reason is not None and self.request.body.get("n") in (None, 1)

    async def _resumed(self, error: LknError) -> bool:
        """With ``LKN_RESUME``: continue on another engine after a failure mid-stream."""
        resume = self._resume
        if resume is None or self._interrupted or self._deadline_passed() or not resume.wants(error):
            return False
        if self._rest is not None:
            await _close(self._rest)  # the failed engine is told to drop the request
        self._rest = None
        try:
            rest = await resume.resume(self, error)
        except asyncio.CancelledError:  # raised here, past the stream's own handler
            if self._cut_by_shutdown():
                raise self._stop(_cut_at_shutdown()) from None
            raise
        if rest is None:
            return False
        self._rest = rest
        if self.lease is not None:
            self._engine = self.lease.engine.name
        return True

    def _stop(self, exc: BaseException) -> BaseException:
        self._finished = True
        return self.fail(exc)

    def fail(self, exc: BaseException) -> BaseException:
        """Record why the request failed (the first reason wins); returns ``exc``."""
        if self._error is None:
            self._error = exc
        return exc

    def _cut_by_shutdown(self) -> bool:
        """Whether the cancellation being handled is :meth:`interrupt`'s (the shutdown's),
        not the caller's own; if so it is taken back."""
        task = self._waiting
        return self._interrupted and task is not None and task.uncancel() == 0

    def interrupt(self) -> None:
        """End the stream with a shutdown error at once (the grace period is over)."""
        self._interrupted = True
        if self._waiting is not None:
            self._waiting.cancel()

    # ---- exit ---------------------------------------------------------------------------

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            if self._rest is not None:  # also one cut by an error: dropped now, not at GC
                self._finished = True
                rest, self._rest = self._rest, None
                await _close(rest)  # the engine is told to drop the request
        finally:
            self._end(exc)
        # A write to a client that has gone is the end of the request, not an error.
        return isinstance(exc, CLIENT_GONE_ERRORS)

    def _end(self, exc: BaseException | None) -> None:
        if self.outcome is not None:
            return
        error = self._error if self._error is not None else exc
        outcome = self.outcome = classify(error, self._deadline_passed())
        gateway = self.gateway
        if self.lease is not None:
            verdict = outcome.verdict
            if self._probe is not None:
                verdict = self._probe_verdict(verdict)
            gateway.pool.settle(self.lease, verdict)
        if self._admitted:
            gateway.leave(self._admitted)
        if self.shape is Shape.STREAM:
            gateway.closed(self)
        gateway.finished(self, outcome)

    def _probe_verdict(self, verdict: Verdict) -> Verdict:
        """A probe settles by how the probe itself ended: failure for an engine error,
        neutral for a timeout, success when it answered."""
        probe = self._probe
        assert probe is not None
        if not probe.probed:
            return Verdict.NEUTRAL
        error = probe.error
        if error is None:
            return Verdict.SUCCESS
        if isinstance(error, (EngineTimeout, asyncio.TimeoutError, asyncio.CancelledError)):
            return Verdict.NEUTRAL
        return classify(error).verdict


def _cut_at_shutdown() -> ShuttingDown:
    return ShuttingDown("the gateway is shutting down; the stream was cut at the end of its "
                        "grace period", code="shutting_down")


def guardable(request: GenerateRequest, shape: Shape) -> bool:
    """Whether the loop guard can watch this answer: one answer of text, streamed or not (a
    non-streamed one is read as a stream, so none with tools or echo, which the rebuilt
    answer would not carry)."""
    body = request.body
    if shape is Shape.PROBE or body.get("n") not in (None, 1):
        return False
    return shape is Shape.STREAM or not (body.get("tools") or body.get("functions")
                                         or body.get("echo"))


def _head(raw: bytes, route: Route) -> JSONObject:
    """The id, object, created and model of the engine's last event (its own shape)."""
    try:
        event = json.loads(raw)
    except ValueError:
        event = {}
    head: JSONObject = event if isinstance(event, dict) else {}
    return {"id": head.get("id"), "object": head.get("object") or (
        "chat.completion.chunk" if route is Route.CHAT else "text_completion"),
        "created": head.get("created"), "model": head.get("model")}


def _dumps(event: JSONObject) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def loop_finish_event(raw: bytes, route: Route) -> bytes:
    """The finish event of an answer the loop guard ended, in the engine's own shape."""
    choice: JSONObject = ({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
                          if route is Route.CHAT else
                          {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"})
    return _dumps({**_head(raw, route), "choices": [choice]})


def loop_usage_event(raw: bytes, route: Route, usage: Usage) -> bytes:
    """The usage chunk of an answer the loop guard ended: what the engine had counted."""
    return _dumps({**_head(raw, route), "choices": [], "usage": {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens}})


async def _replay(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


async def _close(chunks: AsyncIterator[Chunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


__all__ = ["Exchange", "Kind", "Shape"]
