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
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from lkn.breaker import Verdict
from lkn.engines import EngineClient
from lkn.errors import EngineError, LknError, NoEngineAvailable, ShuttingDown
from lkn.pool import Engine, Lease, outcome_of
from lkn.types import Chunk, GenerateRequest, JSONObject, JSONValue, Route

if TYPE_CHECKING:
    from lkn.lifecycle import Exchange
    from lkn.metrics import Metrics

log = logging.getLogger("lkn.resume")

#: Body fields that constrain the output with a grammar the continuation would restart.
_CONSTRAINED = ("regex", "ebnf", "json_schema", "structural_tag")
_BUDGET_KEYS = ("max_tokens", "max_completion_tokens")


def resumable(request: GenerateRequest) -> bool:
    """Whether a streamed request could be continued on another engine at all."""
    body = request.body
    if not request.stream or body.get("n") not in (None, 1):
        return False
    if body.get("tools") or body.get("functions") or body.get("echo"):
        return False  # an echoed prompt would be continued, then echoed again
    if any(body.get(key) is not None for key in _CONSTRAINED):
        return False
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return False
    if request.route is Route.CHAT:
        return isinstance(body.get("messages"), list)
    prompt = body.get("prompt")
    return isinstance(prompt, str) or (
        isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
    )


async def delivered_tokens(client: EngineClient, text: str, chunks: int, rid: str,
                           deadline: float) -> int:  # fmt: skip
    """How many tokens ``text`` (delivered in ``chunks`` chunks) took, by ``client``'s own
    tokenizer; its UTF-8 bytes (an upper bound) when the engine cannot say by ``deadline``."""
    try:
        _, parsed = await client.complete(
            "/v1/tokenize", {"prompt": text, "add_special_tokens": False}, rid, deadline)
    except LknError:
        parsed = {}
    count = parsed.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return max(count, chunks)
    return max(len(text.encode("utf-8")), chunks)


def continuation_body(route: Route, body: JSONObject, delivered: str, tokens: int) -> JSONObject | None:
    """The body that asks an engine to go on after ``delivered``, ``tokens`` long (None:
    budget spent)."""
    updated: JSONObject = dict(body)
    for key in _BUDGET_KEYS:
        limit = body.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool):
            if limit - tokens < 1:
                return None
            updated[key] = limit - tokens
    minimum = body.get("min_tokens")
    if isinstance(minimum, int) and not isinstance(minimum, bool):
        updated["min_tokens"] = max(0, minimum - tokens)
    if route is Route.CHAT:
        raw = body.get("messages")
        messages: list[JSONValue] = list(raw) if isinstance(raw, list) else []
        last = messages[-1] if messages else None
        if (body.get("continue_final_message") is True and isinstance(last, dict)
                and last.get("role") == "assistant" and isinstance(last.get("content"), str)):
            # The client itself asked to continue its assistant message: extend it.
            messages[-1] = {**last, "content": str(last["content"]) + delivered}
        else:
            messages.append({"role": "assistant", "content": delivered})
        updated["messages"] = messages
        updated["continue_final_message"] = True
        return updated
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        updated["prompt"] = [str(prompt[0]) + delivered]
    else:
        updated["prompt"] = str(prompt) + delivered
    return updated


class Resume:
    """What one stream delivered so far, and continuing it elsewhere when its engine fails."""

    def __init__(self, attempts: int) -> None:
        self._attempts_left = attempts
        self._text: list[str] = []
        self._chunks = 0
        self._blocked = False
        self._last_raw: bytes | None = None
        self._answer_id: str | None = None
        #: Engines that failed this stream or refused its continuation (never asked again).
        self._tried: list[Engine] = []

    @classmethod
    def of(cls, request: GenerateRequest, enabled: bool, attempts: int) -> Resume | None:
        if not enabled or attempts < 1 or not resumable(request):
            return None
        return cls(attempts)

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

    async def resume(self, exchange: Exchange, error: LknError) -> AsyncIterator[Chunk] | None:
        """Settle the failed engine's lease, then open the continuation on another engine
        (returns its chunks, the exchange's lease moved to it), or None if none could."""
        pool = exchange.gateway.pool
        request = exchange.request
        failed = exchange.lease
        tried = self._tried
        if failed is not None:
            pool.settle(failed, outcome_of(error))
            tried.append(failed.engine)
            exchange.lease = None
        text, base = "".join(self._text), exchange.engine_body(exchange.decision)
        metrics = exchange.gateway.metrics
        if continuation_body(request.route, base, text, self._chunks) is None:
            self._spent(metrics)
            return None
        model = exchange.gateway.engine_model(request)
        settings = exchange.gateway.settings
        sglang = {settings.engine_name(e) for e in settings.engines if e.kind == "sglang"}
        while self._attempts_left > 0:
            self._attempts_left -= 1
            try:
                lease = await pool.acquire_waiting(model, tried, exchange.deadline)
            except NoEngineAvailable:
                break
            if request.route is Route.CHAT and lease.engine.name not in sglang:
                tried.append(lease.engine)
                pool.settle(lease, Verdict.NEUTRAL)  # no assistant prefill on this engine
                self._attempts_left += 1
                continue
            tokens = await delivered_tokens(lease.engine.client, text, self._chunks,
                                            exchange.request_id, self._count_deadline(exchange))
            body = continuation_body(request.route, base, text, tokens)
            if body is None:
                pool.settle(lease, Verdict.NEUTRAL)
                self._spent(metrics)
                return None
            chunks = await self._open(exchange, lease, body)
            if chunks is None:
                tried.append(lease.engine)
                continue
            exchange.lease = lease
            metrics.child(metrics.resumes, "resumed").inc()
            log.warning(
                "stream resumed rid=%s engine=%s failed_engine=%s delivered_tokens=%d error=%s",
                exchange.request_id, lease.engine.name,
                failed.engine.name if failed is not None else "-", tokens, type(error).__name__,
            )
            return chunks
        self._attempts_left = 0
        metrics.child(metrics.resumes, "failed").inc()
        log.warning("stream not resumed rid=%s failed_engine=%s: no engine could continue",
                    exchange.request_id, failed.engine.name if failed is not None else "-")
        return None

    @staticmethod
    def _count_deadline(exchange: Exchange) -> float:
        deadline = time.monotonic() + exchange.gateway.settings.health_timeout
        return deadline if exchange.deadline is None else min(deadline, exchange.deadline)

    def _spent(self, metrics: Metrics) -> None:
        """The client's budget is spent: nothing to continue (the original failure stands)."""
        self._attempts_left = 0
        metrics.child(metrics.resumes, "budget_spent").inc()

    async def _open(self, exchange: Exchange, lease: Lease, body: JSONObject
                    ) -> AsyncIterator[Chunk] | None:  # fmt: skip
        """The continuation's stream on ``lease``, once its first chunk is in."""
        pool = exchange.gateway.pool
        client = lease.engine.client
        stream = client.stream(exchange.request.route, body, exchange.request_id,
                               exchange.deadline)
        chunks = self._relabel(stream)
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            pool.settle(lease, Verdict.FAILURE)
            return None
        except LknError as exc:
            pool.settle(lease, outcome_of(exc))
            return None
        except BaseException:
            await chunks.aclose()
            pool.settle(lease, Verdict.NEUTRAL)
            raise
        pool.confirm(lease)
        return _prepend(first, chunks)

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
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

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


def _id_of(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    value = event.get("id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


async def _prepend(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
