"""One request's life, from admission to the last byte: :class:`Exchange`.

Every front-end uses it the same way::

    async with gateway.stream(request, "rest") as answer:   # streamed
        async for chunk in answer: ...
    async with gateway.complete(request, "grpc") as answer:  # non-streamed
        answer.completion
    async with gateway.decision_only(request, "rest") as answer:     # decision only
        answer.decision

On entry: admission (``LKN_MAX_CONCURRENCY``, by cost), the model's engines, then pool
attempts with a retry before the first byte. One attempt (:meth:`Exchange._attempt`) is the
decision step (:meth:`Exchange.decide`), the engine body (:meth:`Exchange.engine_body`) and
the engine call of its shape (:mod:`lkn.exchange.attempts`), up to the first chunk (or, for
a non-streamed answer, the engine's status line), which confirms a half-open trial. Between
the engine and the front-end the chunks pass through :meth:`Exchange.__anext__`, which turns
a stream cut short (no finish reason) into an engine error, continues it elsewhere with
``LKN_RESUME``, and lets the loop guard end it.

On exit, whatever happened (success, an error before or after the first byte, the client
leaving, cancellation, a bug in a front-end): the outcome is classified once by
:func:`lkn.outcome.classify`, then the lease is settled, admission released, one metric
incremented and one log line written that names the engine (:mod:`lkn.exchange.report`).
Exceptions a front-end reports itself (a mid-stream error turned into an SSE event) are
recorded with :meth:`Exchange.fail`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from types import TracebackType

from lkn.breaker import Verdict
from lkn.engines import EngineClient
from lkn.engines.wire import parse_completion
from lkn.errors import EngineError, EngineRejected, EngineTimeout, LknError
from lkn.exchange import attempts
from lkn.exchange.attempts import ObservedEngine, Try
from lkn.exchange.core import Core
from lkn.exchange.delivery import Delivery
from lkn.exchange.events import close, cut_at_shutdown, loop_tail, replay
from lkn.exchange.resume import Resume, ResumeContext
from lkn.exchange.shape import (
    Shape, guardable, read_as_stream, with_default_budget, with_stream_options,
)
from lkn.loopguard import LoopGuard
from lkn.outcome import CLIENT_GONE_ERRORS, Outcome, classify
from lkn.pool import Lease
from lkn.speculative import HeldGeneration, hold
from lkn.values import PASSTHROUGH, Chunk, Completion, Decision, GenerateRequest, JSONObject, Usage

log = logging.getLogger("lkn.request")


class Exchange(Delivery):
    """One request, from admission to the last byte. Use it as an async context manager;
    a streamed one is also an async iterator of chunks."""

    def __init__(self, core: Core, request: GenerateRequest, frontend: str,
                 shape: Shape) -> None:  # fmt: skip
        self.core = core
        settings = core.settings
        request = with_default_budget(request, settings.default_max_tokens)
        self.request, self.frontend, self.shape = request, frontend, shape
        self.decision: Decision = PASSTHROUGH
        self.completion: Completion | None = None
        self.lease: Lease | None = None
        self.outcome: Outcome | None = None
        self.started = core.clock()
        self._deadline = None if request.timeout is None else self.started + request.timeout
        self._admitted = 0  # admission slots held (a request for n answers holds n)
        self._engine = ""
        self._probe: ObservedEngine | None = None
        #: Whether it was a consistency vote.
        self.voted = False
        super().__init__(
            Resume.of(request, settings.resume, settings.resume_attempts,
                      lambda: ResumeContext.of(core, request)) if shape is Shape.STREAM else None,
            LoopGuard(settings.loop) if settings.loop_guard and guardable(request, shape)
            else None)
        #: Whether the guard reads the engine's answer as a stream (a streamed one always).
        self._guard_live = self._guard is not None and (
            shape is Shape.STREAM or read_as_stream(request, settings.loop.stream_above))

    @property
    def route(self) -> str:
        """The route label it is counted under (``probe`` for a decision only)."""
        return "probe" if self.shape is Shape.DECISION else self.request.route.label

    @property
    def deadline(self) -> float | None:
        return self._deadline

    # ---- entry ------------------------------------------------------------------------

    async def __aenter__(self) -> Exchange:
        core = self.core
        try:
            self._admitted = core.admission.admit(
                core.decider.chooser.weight(self.request.body, self.request.intervention))
            core.report.prompt(self.request)
            model = core.models.engine_model(self.request)
            if self.shape is Shape.DECISION and not core.decider.needs_engine:
                core.pool.candidates(model)  # an unknown model is still 404
                self.decision = await self.decide(None)
                return self
            if self.shape is Shape.STREAM:
                # From entry: a shutdown also ends a stream still waiting for its first byte
                # (a vote, a held generation), with its error event and [DONE].
                core.streams.opened(self)
            await self._first_byte(model)
            self._observe_first_byte()
        except BaseException as exc:
            self._end(exc)
            raise
        return self

    def _observe_first_byte(self) -> None:
        if self.shape is Shape.DECISION:
            return
        core = self.core
        ttft = core.clock() - self.started
        core.metrics.child(core.metrics.ttft, self.route).observe(ttft)
        if self.shape is Shape.STREAM and not self.voted:
            # A vote's first token waits for all K answers: that is the care's cost, not
            # the engines' load, so it does not feed the shedder.
            core.decider.homeostat.observe_ttft(ttft)

    async def _first_byte(self, model: str | None) -> None:
        """The pool's attempts up to the first byte; the end of the shutdown grace period
        interrupts them with a shutdown error."""
        pool = self.core.pool
        if self._interrupted:
            raise cut_at_shutdown()
        self._waiting = asyncio.current_task()
        try:
            self.lease, _ = await pool.run(
                self._attempt, self._deadline, model, pool.prefix(self.request.body)
            )
        except asyncio.CancelledError:
            if self._cut_by_shutdown():
                raise cut_at_shutdown() from None
            raise
        finally:
            self._waiting = None

    async def _attempt(self, lease: Lease) -> None:
        """One try on one engine, up to the first byte; raises only before it."""
        client: EngineClient = lease.engine.client
        self._engine = client.name
        if self.shape is Shape.DECISION:
            self._probe = ObservedEngine(client)
            self.decision = await self.decide(self._probe)
            return
        # entropy/hybrid: the generation itself may be the probe (lkn.speculative).
        held = hold(client, self.request, self.core.settings.decision, self._deadline)
        try:
            self.decision = await self.decide(held or client)
        except BaseException:
            if held is not None:
                await held.aclose()
            raise
        chooser = self.core.decider.chooser
        if chooser.votes(self.decision, self.request.body) and self._afford_vote():
            if held is not None:  # the vote is a request of its own (on the cached prefix)
                await held.aclose()
                held = None
            if await self._voted(self._try(client, None), lease):
                return
        if self.shape is Shape.COMPLETE:
            await self._complete(self._try(client, held), lease)
        else:
            self._pending, self._rest = await attempts.first_chunk(self._try(client, held))
            self.core.pool.confirm(lease)
            self._note_placement(held)

    def _try(self, client: EngineClient, held: HeldGeneration | None) -> Try:
        return Try(client, held, self.request, self.decision, self.engine_body, self._deadline,
                   self._deadline_passed)

    async def _complete(self, t: Try, lease: Lease) -> None:
        """A non-streamed answer: under the loop guard (read as a stream, or checked once
        it is in) or plain."""
        def answered() -> None:
            self.core.pool.confirm(lease)

        if self._guard is None:
            raw, parsed = await attempts.whole(t, answered)
        else:
            read = attempts.guarded if self._guard_live else attempts.checked
            raw, parsed, looped = await read(t, self._guard, answered)
            if looped:
                self.loop_stopped = True
                self.core.report.loop_stopped(self.core.models.engine_model(self.request))
        self._note_placement(t.held)
        self._set_completion(raw, parsed, t.client.name)

    def _set_completion(self, raw: bytes, parsed: JSONObject, engine: str) -> None:
        text, finish, usage = parse_completion(parsed)
        self.usage, self.finish_reason = usage, finish
        self.completion = Completion(raw, text, finish, usage, self.decision, engine,
                                     self.request_id)  # fmt: skip

    def _afford_vote(self) -> bool:
        """A vote holds one admission slot per answer: when they are not free, the vote is
        shed to the instruction (said in the policy and ``X-LKN-Shed``)."""
        chooser = self.core.decider.chooser
        k = chooser.parse(self.decision.intervention).consistency
        if self.core.admission.admit_more(k - self._admitted):
            self._admitted = max(self._admitted, k)
            return True
        self.decision = chooser.without_vote(self.decision, f"no room for {k} answers")
        return False

    async def _voted(self, t: Try, lease: Lease) -> bool:
        """The vote, or False when the engine refused its ``n`` answers before any (a 4xx:
        llama.cpp takes ``n`` up to its slot count): the vote is then shed to the
        instruction, said in the policy and ``X-LKN-Shed``, and the answer is generated
        once."""
        try:
            await self._vote(t, lease)
        except EngineRejected as exc:
            self.voted = False
            k = self.core.decider.chooser.parse(self.decision.intervention).consistency
            log.info("vote refused rid=%s engine=%s upstream_status=%s retry=one_answer",
                     self.request_id, exc.engine, exc.upstream_status)
            self.decision = self.core.decider.chooser.without_vote(
                self.decision, f"engine refused n={k} (status {exc.upstream_status})")
            return False
        return True

    async def _vote(self, t: Try, lease: Lease) -> None:
        """consistency: K answers, the agreed one kept (streamed after the vote)."""
        self.voted = True
        decider = self.core.decider
        body = decider.apply(self.decision, self.request.body)
        adaptive = decider.chooser.parse(self.decision.intervention).adaptive
        result = await attempts.vote(t, body, lambda: self.core.pool.confirm(lease), adaptive)
        self._add_policy_note(result.note)
        if self.shape is Shape.COMPLETE:
            raw = json.dumps(result.answer, ensure_ascii=False).encode()
            self._set_completion(raw, result.answer, t.client.name)
            return
        self._pending, self._rest = attempts.vote_chunks(result.answer, self.request.route)

    def _note_placement(self, held: HeldGeneration | None) -> None:
        """A restart that moved the instruction says where, beside the policy (headers,
        gRPC and the probe's answer carry it)."""
        if held is not None and held.placement is not None:
            self._add_policy_note(f"restart {held.placement}")

    def _add_policy_note(self, note: str) -> None:
        self.decision = replace(self.decision, policy=f"{self.decision.policy or '-'}; {note}")

    # ---- extension points ---------------------------------------------------------------

    async def decide(self, engine: EngineClient | None) -> Decision:
        """The decision step: how much care this request gets (``engine`` will generate)."""
        core = self.core
        return await core.decider.decide(self.request, engine, self._deadline,
                                         override=core.models.mode_override(self.request))

    def engine_body(self, decision: Decision) -> JSONObject:
        """What the engine gets; the engine client adds the rid and its model name."""
        body = self.core.decider.apply(decision, self.request.body)
        return with_stream_options(body, self.request, self._guard_live, self.frontend)

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and self.core.clock() >= self._deadline - 0.001

    # ---- exit ---------------------------------------------------------------------------

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:  # fmt: skip
        try:
            if self._rest is not None:  # also one cut by an error: dropped now, not at GC
                self._finished = True
                rest, self._rest = self._rest, None
                await close(rest)  # the engine is told to drop the request
        finally:
            self._end(exc)
        # A write to a client that has gone is the end of the request, not an error.
        return isinstance(exc, CLIENT_GONE_ERRORS)

    def _end(self, exc: BaseException | None) -> None:
        if self.outcome is not None:
            return
        error = self._error if self._error is not None else exc
        outcome = self.outcome = classify(error, self._deadline_passed())
        core = self.core
        if self.lease is not None:
            verdict = outcome.verdict if self._probe is None else _probe_verdict(self._probe)
            core.pool.settle(self.lease, verdict)
        if self._admitted:
            core.admission.leave(self._admitted)
        if self.shape is Shape.STREAM:
            core.streams.closed(self)
        core.report.finished(self, outcome)


def _probe_verdict(probe: ObservedEngine) -> Verdict:
    """A probe settles by how the probe itself ended: failure for an engine error, neutral
    for a timeout (or none made), success when it answered."""
    if not probe.probed:
        return Verdict.NEUTRAL
    error = probe.error
    if error is None:
        return Verdict.SUCCESS
    if isinstance(error, (EngineTimeout, asyncio.TimeoutError, asyncio.CancelledError)):
        return Verdict.NEUTRAL
    return classify(error).verdict
