"""The voted answer as a stream: what a streamed client of the vote receives."""

from __future__ import annotations

import json

from lkn.engines.wire import REASONING_KEYS, parse_chunk
from lkn.values import Chunk, JSONObject, JSONValue, Route, Usage


def _event(parsed: JSONObject, route: Route, delta: JSONObject, finish: str | None,
           usage: JSONValue = None) -> bytes:  # fmt: skip
    base: JSONObject = {k: parsed[k] for k in ("id", "created", "model") if k in parsed}
    if route is Route.CHAT:
        base["object"] = "chat.completion.chunk"
        choice: JSONObject = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        base["object"] = "text_completion"
        choice = {"index": 0, "text": delta.get("content", ""), "finish_reason": finish}
    base["choices"] = [choice] if usage is None else []
    if usage is not None:
        base["usage"] = usage
    return json.dumps(base, ensure_ascii=False, separators=(",", ":")).encode()


def as_chunks(answer: JSONObject, route: Route, usage: Usage | None) -> list[Chunk]:
    """The voted answer as stream events: what its message holds (reasoning under the key
    the engine used, tool calls with their index, text), its finish, then the usage."""
    choice = answer["choices"][0]  # type: ignore[index]
    assert isinstance(choice, dict)
    delta: JSONObject = {"role": "assistant"}
    if route is Route.CHAT:
        message = choice.get("message")
        held: JSONObject = message if isinstance(message, dict) else {}
        delta.update({k: v for k, v in held.items() if k in REASONING_KEYS and v})
        calls = held.get("tool_calls")
        if isinstance(calls, list) and calls:
            delta["tool_calls"] = [{**c, "index": i} if isinstance(c, dict) else c
                                   for i, c in enumerate(calls)]
        delta["content"] = str(held.get("content") or "")
    else:
        delta["content"] = str(choice.get("text") or "")
    finish = choice.get("finish_reason")
    events = [_event(answer, route, delta, None),
              _event(answer, route, {}, finish if isinstance(finish, str) else "stop")]
    if usage is not None:
        events.append(_event(answer, route, {}, None, {
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}))
    return [parse_chunk(raw, "vote") for raw in events]
