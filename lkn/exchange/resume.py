"""An answer that survives its engine (``LKN_RESUME``): continue a stream on another engine.

When the engine serving a streamed answer fails after the first byte (killed, restarted,
connection lost, stream cut short), the client has already received part of the answer.
With resume on, the gateway asks another engine serving the same model to continue from
exactly that text, and the client's stream goes on as one answer:

- chat: the conversation plus the delivered text as a final assistant message, with
  SGLang's ``continue_final_message`` (assistant prefill: the template does not close the
  message, the model continues it); only SGLang engines are asked;
- completions: the prompt plus the delivered text;
- the token budget (``max_tokens`` / ``max_completion_tokens``, ``min_tokens``) is reduced
  by the tokens already delivered, counted by the continuing engine's tokenizer (SGLang's
  ``/v1/tokenize``; never fewer than the chunks delivered); an engine that cannot count
  them gets the delivered text's UTF-8 bytes, an upper bound (a byte-level BPE token is at
  least one byte), so a resumed answer never runs past the client's budget;
- at most ``LKN_RESUME_ATTEMPTS`` other engines are tried; when none can continue, the
  original failure ends the stream as before (an error event, then ``[DONE]``; gRPC: an
  error status).

Not resumed: ``n`` > 1, completions with ``echo`` (the prompt is part of the delivered
text, and the continuation would echo it again), requests with tools (a tool call cannot be
continued half-way) or a
constrained output format (the grammar would restart inside the answer), answers that have
already streamed a tool call or reasoning text, and prompts that are not text. Greedy
answers continue token for token where the engines compute alike; a sampled answer continues
as a plausible whole, not the one the first engine would have written.

What the client sees of a resumed answer: the same chunk ``id`` throughout; the usage it
gets is the continuation's (its prompt count includes the delivered text). The breaker
counts the first engine's failure as usual; metrics (``lkn_stream_resumes_total``) and one
log line per resume say what happened.
"""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from lkn.errors import EngineError, LknError, ShuttingDown
from lkn.exchange.continuation import continuation_body, delivered_tokens, resumable
from lkn.exchange.core import Core
from lkn.exchange.events import close, prepend
from lkn.metrics import Metrics
from lkn.outcome import classify
from lkn.pool import Engine, EnginePool, Lease
from lkn.values import Chunk, Decision, GenerateRequest, JSONObject, Route

log = logging.getLogger("lkn.resume")


class Resumed(Protocol):
    """The exchange as a resume sees it: its request, its budget, and its lease (moved to
    the continuing engine)."""

    lease: Lease | None

    @property
    def request(self) -> GenerateRequest: ...
    @property
    def request_id(self) -> str: ...
    @property
    def deadline(self) -> float | None: ...
    @property
    def decision(self) -> Decision: ...
    def engine_body(self, decision: Decision) -> JSONObject: ...


@dataclass(frozen=True)
class ResumeContext:
    """What continuing a stream needs of the gateway."""

    pool: EnginePool
    metrics: Metrics
    clock: Callable[[], float]
    #: Engines that can prefill an assistant message (SGLang): the only ones for chat.
    prefills: frozenset[str]
    #: Longest wait for an engine to count the delivered tokens.
    count_timeout: float
    model: str | None

    @classmethod
    def of(cls, core: Core, request: GenerateRequest) -> ResumeContext:
        settings = core.settings
        return cls(core.pool, core.metrics, core.clock,
                   frozenset(settings.engine_name(e) for e in settings.engines
                             if e.kind == "sglang"),
                   settings.health_timeout, core.models.engine_model(request))


class Resume:
    """What one stream delivered so far, and continuing it elsewhere when its engine fails."""

    def __init__(self, attempts: int, context: ResumeContext) -> None:
        self._attempts_left = attempts
        self._context = context
        self._text: list[str] = []
        self._chunks = 0
        self._blocked = False
        self._last_raw: bytes | None = None
        self._answer_id: str | None = None
        #: Engines that failed this stream or refused its continuation (never asked again).
        self._tried: list[Engine] = []

    @classmethod
    def of(cls, request: GenerateRequest, enabled: bool, attempts: int,
           context: Callable[[], ResumeContext]) -> Resume | None:  # fmt: skip
        if not enabled or attempts < 1 or not resumable(request):
            return None
        return cls(attempts, context())

    def note(self, chunk: Chunk) -> None:
        """A chunk on its way to the client."""
        if chunk.tool_call or chunk.reasoning:
            self._blocked = True
        if chunk.text:
            self._text.append(chunk.text)
            self._chunks += 1
        if not chunk.usage_only:
            self._last_raw = chunk.raw

    def wants(self, error: BaseException) -> bool:
        """Whether this failure is one to continue from."""
        return (not self._blocked and self._attempts_left > 0
                and isinstance(error, EngineError) and not isinstance(error, ShuttingDown))

    async def resume(self, stream: Resumed, error: LknError) -> AsyncIterator[Chunk] | None:
        """Settle the failed engine's lease, then open the continuation on another engine
        through the pool's attempts (returns its chunks, the stream's lease moved to it), or
        None if none could."""
        context = self._context
        failed, stream.lease = stream.lease, None
        if failed is not None:
            context.pool.settle(failed, classify(error).verdict)
            self._tried.append(failed.engine)
        text, base = "".join(self._text), stream.engine_body(stream.decision)
        if continuation_body(stream.request.route, base, text, self._chunks) is None:
            self._spent()
            return None
        failed_name = failed.engine.name if failed is not None else "-"
        try:
            lease, opened = await context.pool.run(
                lambda lease: self._continue_on(stream, lease, base, text), stream.deadline,
                context.model, exclude=self._excluded(stream.request), tries=self._attempts_left)
        except _BudgetSpent:
            self._spent()
            return None
        except LknError:
            self._attempts_left = 0
            context.metrics.child(context.metrics.resumes, "failed").inc()
            log.warning("stream not resumed rid=%s failed_engine=%s: no engine could continue",
                        stream.request_id, failed_name)
            return None
        self._resumed(stream, lease, failed_name, opened.tokens, error)
        return opened.chunks

    def _excluded(self, request: GenerateRequest) -> list[Engine]:
        """Engines never asked: those that failed this stream, and for chat those that
        cannot prefill an assistant message (only SGLang can)."""
        if request.route is not Route.CHAT:
            return list(self._tried)
        context = self._context
        return [*self._tried, *(engine for engine in context.pool.candidates(context.model)
                                if engine.name not in context.prefills)]

    async def _continue_on(self, stream: Resumed, lease: Lease, base: JSONObject,
                           text: str) -> Chunks:  # fmt: skip
        """One attempt: the delivered tokens counted by this engine, then the continuation
        opened up to its first chunk (raises :class:`_BudgetSpent` when nothing is left of
        the client's budget, an engine error for the pool to try the next engine)."""
        self._attempts_left -= 1
        self._tried.append(lease.engine)
        context, request = self._context, stream.request
        deadline = context.clock() + context.count_timeout
        tokens = await delivered_tokens(lease.engine.client, text, self._chunks,
                                        stream.request_id, deadline if stream.deadline is None
                                        else min(deadline, stream.deadline))  # fmt: skip
        body = continuation_body(request.route, base, text, tokens)
        if body is None:
            raise _BudgetSpent
        chunks = self._relabel(lease.engine.client.stream(
            request.route, body, stream.request_id, stream.deadline))
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise EngineError(f"engine {lease.engine.name} sent an empty continuation",
                              engine=lease.engine.name) from None
        except BaseException:
            await chunks.aclose()
            raise
        context.pool.confirm(lease)
        return Chunks(prepend(first, chunks), tokens)

    def _resumed(self, stream: Resumed, lease: Lease, failed: str, tokens: int,
                 error: LknError) -> None:  # fmt: skip
        stream.lease = lease
        self._context.metrics.child(self._context.metrics.resumes, "resumed").inc()
        log.warning(
            "stream resumed rid=%s engine=%s failed_engine=%s delivered_tokens=%d error=%s",
            stream.request_id, lease.engine.name, failed, tokens, type(error).__name__,
        )

    def _spent(self) -> None:
        """The client's budget is spent: nothing to continue (the original failure stands)."""
        self._attempts_left = 0
        self._context.metrics.child(self._context.metrics.resumes, "budget_spent").inc()

    async def _relabel(self, stream: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
        """The continuation's chunks as parts of the same answer: its opening role chunk is
        dropped and every chunk carries the first engine's answer id."""
        try:
            async for chunk in stream:
                if not (chunk.text or chunk.reasoning or chunk.finish_reason
                        or chunk.usage is not None or chunk.tool_call):
                    continue
                yield self._with_answer_id(chunk)
        finally:
            await close(stream)

    def _with_answer_id(self, chunk: Chunk) -> Chunk:
        if self._answer_id is None:
            self._answer_id = _id_of(self._last_raw) or ""
        if not self._answer_id:
            return chunk
        try:
            event = json.loads(chunk.raw)
        except ValueError:
            return chunk
        if not isinstance(event, dict) or event.get("id") == self._answer_id:
            return chunk
        event["id"] = self._answer_id
        raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        return replace(chunk, raw=raw)


@dataclass(frozen=True)
class Chunks:
    """A continuation opened: its chunks, and the tokens it was told were delivered."""

    chunks: AsyncIterator[Chunk]
    tokens: int


class _BudgetSpent(Exception):
    """Nothing is left of the client's budget to continue with (counted by this engine)."""


def _id_of(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None
