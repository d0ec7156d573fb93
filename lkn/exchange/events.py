"""Events the gateway writes into an engine's stream itself (in the engine's own shape), and
helpers for chunk iterators."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from lkn.errors import ShuttingDown
from lkn.values import Chunk, JSONObject, Route, Usage


def cut_at_shutdown() -> ShuttingDown:
    return ShuttingDown("the gateway is shutting down; the stream was cut at the end of its "
                        "grace period", code="shutting_down")


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


def loop_tail(last: Chunk, route: Route, usage: Usage | None) -> list[Chunk]:
    """What ends an answer the loop guard stopped after ``last``: its finish, then the
    engine's running usage count when there is one (continuous usage)."""
    tail = [Chunk(raw=loop_finish_event(last.raw, route), finish_reason="length")]
    if usage is not None:
        tail.append(Chunk(raw=loop_usage_event(last.raw, route, usage), usage=usage,
                          usage_only=True))
    return tail


async def replay(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk


async def prepend(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await close(rest)


async def close(chunks: AsyncIterator[Chunk]) -> None:
    """Close an engine's chunk iterator (its engine is told to drop the request)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
