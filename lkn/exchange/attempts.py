"""One try on one engine, up to the first byte, for each shape of answer: a stream, a whole
answer (under the loop guard read as a stream or checked once in, or plain), a vote, and a
held generation's restart (:mod:`lkn.speculative`). Each raises only before anything
reached the client, so the pool may try the next engine; an engine error past the request's
deadline is reported as the deadline (:func:`deadline_error`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast

from lkn.decision import adaptive as adaptive_vote
from lkn.decision import consistency, vote_stream
from lkn.engines import EngineClient
from lkn.engines.base import DelegatingEngine
from lkn.engines.batches import batch_of
from lkn.engines.wire import parse_completion
from lkn.errors import DeadlineExceeded, EngineError, LknError
from lkn.exchange.events import close, replay
from lkn.loopguard import LoopGuard, loop_end
from lkn.engines.rebuild import assemble
from lkn.speculative import HeldGeneration
from lkn.values import Chunk, Decision, GenerateRequest, JSONObject, ProbeResult, Route

BodyFor = Callable[[Decision], JSONObject]


class ObservedEngine(DelegatingEngine):
    """The engine as the decision step sees it, remembering how a probe on it ended (so a
    probe request settles its lease by the probe's real outcome)."""

    def __init__(self, client: EngineClient) -> None:
        super().__init__(client)
        self.probed = False
        self.error: BaseException | None = None

    async def probe(self, route: Route, body: JSONObject, rid: str, top_k: int, tokens: int,
                    deadline: float | None = None) -> ProbeResult:  # fmt: skip
        self.probed = True
        try:
            return await self.client.probe(route, body, rid, top_k, tokens, deadline)
        except BaseException as exc:
            self.error = exc
            raise


@dataclass(frozen=True)
class Try:
    """One attempt's fixed inputs: the engine, the held generation (or None), the request,
    the decision taken, how the engine body is built, and the deadline."""

    client: EngineClient
    held: HeldGeneration | None
    request: GenerateRequest
    decision: Decision
    body_for: BodyFor
    deadline: float | None
    deadline_passed: Callable[[], bool]

    def deadline_error(self, exc: EngineError) -> LknError:
        if self.deadline_passed():
            return DeadlineExceeded("the request deadline expired before the engine answered")
        return exc


async def open_chunks(t: Try, body_for: BodyFor) -> AsyncIterator[Chunk]:
    """The engine's stream for this attempt: the held generation's (restarted if the
    decision asks for more care), or a new request."""
    if t.held is not None:
        return await t.held.open_stream(t.decision, body_for)
    return t.client.stream(t.request.route, body_for(t.decision), t.request.request_id,
                           t.deadline)


async def first_chunk(t: Try) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """A streamed answer: the engine's first chunk, and the rest."""
    try:
        chunks = await open_chunks(t, t.body_for)
    except BaseException:
        if t.held is not None:
            await t.held.aclose()
        raise
    try:
        return await chunks.__anext__(), chunks
    except StopAsyncIteration:
        raise EngineError(f"engine {t.client.name} sent an empty stream",
                          engine=t.client.name) from None
    except EngineError as exc:
        raise t.deadline_error(exc) from None
    except BaseException:
        await close(chunks)
        raise


async def whole(t: Try, answered: Callable[[], None]) -> tuple[bytes, JSONObject]:
    """A non-streamed answer as the engine wrote it (its status line confirms a half-open
    trial, through ``answered``)."""
    try:
        if t.held is not None:
            return await t.held.open_complete(t.decision, t.body_for, answered=answered)
        return await t.client.complete(t.request.route, t.body_for(t.decision),
                                       t.request.request_id, t.deadline, answered=answered)
    except EngineError as exc:
        raise t.deadline_error(exc) from None


async def guarded(t: Try, guard: LoopGuard, answered: Callable[[], None]
                  ) -> tuple[bytes, JSONObject, bool]:  # fmt: skip
    """A non-streamed answer read as a stream, so that the loop guard can end it (its first
    chunk confirms a half-open trial, as a plain answer's status line does); returns the
    rebuilt answer and whether the guard ended it (finish ``length``)."""
    def body_for(decision: Decision) -> JSONObject:
        return {**t.body_for(decision), "stream": True}

    try:
        collected, looped = await _collect(await open_chunks(t, body_for), guard, answered)
    except EngineError as exc:
        raise t.deadline_error(exc) from None
    request = t.request
    raw, parsed = assemble(request, collected, keep_logprobs=bool(request.body.get("logprobs")))
    return (_ended_by_guard(parsed) if looped else raw), parsed, looped


def _ended_by_guard(parsed: JSONObject) -> bytes:
    """``parsed`` (changed in place) as an answer the loop guard ended: finish ``length``."""
    choices = parsed.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choices[0].update(finish_reason="length", matched_stop=None)
    return json.dumps(parsed, ensure_ascii=False).encode()


async def checked(t: Try, guard: LoopGuard, answered: Callable[[], None]
                  ) -> tuple[bytes, JSONObject, bool]:  # fmt: skip
    """A short non-streamed answer asked for whole, then checked by the loop guard as if it
    had streamed: a loop is cut where the guard would have cut it (finish ``length``)."""
    raw, parsed = await whole(t, answered)
    choices = parsed.get("choices")
    first = choices[0] if isinstance(choices, list) and len(choices) == 1 else None
    chat = t.request.route is Route.CHAT
    part = first.get("message") if chat and isinstance(first, dict) else first
    key = "content" if chat else "text"
    text = part.get(key) if isinstance(part, dict) else None
    end = loop_end(guard, text) if isinstance(text, str) else None
    if end is None or not isinstance(part, dict):
        return raw, parsed, False
    part[key] = cast(str, text)[:end]
    return _ended_by_guard(parsed), parsed, True


async def _collect(chunks: AsyncIterator[Chunk], guard: LoopGuard,
                   answered: Callable[[], None]) -> tuple[list[Chunk], bool]:  # fmt: skip
    collected: list[Chunk] = []
    try:
        while True:
            try:
                batch = await batch_of(chunks)  # the events of one engine read
            except StopAsyncIteration:
                break
            for chunk in batch:
                if not collected:
                    answered()
                collected.append(chunk)
                if chunk.text and chunk.finish_reason is None and guard.feed(chunk.text):
                    return collected, True
    except LknError:
        if not any(c.finish_reason is not None for c in collected):
            raise  # cut before its finish: an engine failure, tried again elsewhere
    finally:
        await close(chunks)
    return collected, False


@dataclass(frozen=True)
class Vote:
    """consistency: the agreed answer, and what the decision's policy says of the vote."""

    answer: JSONObject
    note: str


async def vote(t: Try, body: JSONObject, answered: Callable[[], None],
               adaptive: bool = False) -> Vote:  # fmt: skip
    """K answers in one non-streamed engine request (``body``: the care applied, ``n=K``),
    the agreed one kept. ``adaptive``: two answers first, the other K - 2 only when those
    two disagree (one more request, on the prefix the engine has cached)."""
    request = t.request
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    k, first = body.get("n"), adaptive_vote.FIRST
    rounds = adaptive and isinstance(k, int) and k > first
    parsed = await _answers(t, {**body, "n": first} if rounds else body, answered)
    how = ""
    if rounds:
        how = f" (adaptive: stopped at {first} of {k})"
        if not adaptive_vote.agreed(parsed, request.route, first):
            more = await _answers(t, {**body, "n": cast(int, k) - first}, answered)
            parsed, how = adaptive_vote.merged(parsed, more), " (adaptive)"
    answer, result = consistency.decide(parsed, request.route, t.client.name,
                                        bool(request.body.get("logprobs")))
    # The vote's budget per answer (LKN_CONSISTENCY_MAX_TOKENS) is said, never silent.
    budget = body.get("max_tokens")
    lowered = f", max_tokens {budget}" if budget != request.body.get("max_tokens") else ""
    return Vote(answer, f"vote {result.agreeing}/{result.usable}{how}{lowered}")


async def _answers(t: Try, body: JSONObject, answered: Callable[[], None]) -> JSONObject:
    try:
        _, parsed = await t.client.complete(t.request.route, body, t.request.request_id,
                                            t.deadline, answered=answered)
    except EngineError as exc:
        raise t.deadline_error(exc) from None
    return parsed


def vote_chunks(answer: JSONObject, route: Route) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """The agreed answer as a stream (sent after the vote; SSE keep-alives cover the wait)."""
    chunks = vote_stream.as_chunks(answer, route, parse_completion(answer)[2])
    return chunks[0], replay(chunks[1:])
