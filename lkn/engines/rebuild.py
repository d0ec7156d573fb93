"""Answers around a stream: a non-streamed answer put back together from the chunks of a
streamed one, the generated tokens' texts of an event, and events without the logprobs the
client did not ask for. Pure functions; bounded work per chunk."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lkn.values import Chunk, GenerateRequest, JSONObject, JSONValue, Route


def _dumps(value: JSONValue) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def strip_logprobs(raw: bytes) -> bytes:
    """An engine event without the logprobs of its choices (``"logprobs": null``)."""
    event = json.loads(raw)
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list):
        return raw
    for choice in choices:
        if isinstance(choice, dict) and choice.get("logprobs") is not None:
            choice["logprobs"] = None
    return _dumps(event)


def token_texts(event: JSONObject) -> list[str]:
    """The generated tokens' texts in one chat or completions event."""
    choices = event.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        return []
    logprobs = choices[0].get("logprobs")
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):
        return [str(e.get("token", "")) if isinstance(e, dict) else "" for e in content]
    tokens = logprobs.get("tokens")
    return [str(t) for t in tokens] if isinstance(tokens, list) else []


def _plain(chunk: Chunk) -> bool:
    """A piece of answer text and nothing else the rebuilt answer reads but a running usage
    count (its text is the chunk's own, so its event need not be parsed again)."""
    return bool(chunk.text) and not (chunk.finish_reason or chunk.reasoning or chunk.tool_call
                                     or chunk.usage_only)


class _Answer:
    """One answer put together from the events of its stream."""

    def __init__(self, chat: bool, keep_logprobs: bool) -> None:
        self.chat, self.keep_logprobs = chat, keep_logprobs
        self.text, self.reasoning = "", ""
        self.finish: JSONValue = None
        self.matched: JSONValue = None
        self.usage: JSONValue = None
        self.content_lp: list[JSONValue] = []
        self.legacy: dict[str, list[JSONValue]] = {}

    def add(self, event: JSONObject) -> None:
        if event.get("usage") is not None:
            self.usage = event["usage"]
        choices = event.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):
                self._choice(choice)

    def _choice(self, choice: JSONObject) -> None:
        delta = choice.get("delta")
        part = delta if isinstance(delta, dict) else choice
        piece = part.get("content") if self.chat else part.get("text")
        self.text += piece if isinstance(piece, str) else ""
        thought = part.get("reasoning_content")  # SGLang's key; some engines: reasoning
        thought = thought if isinstance(thought, str) else part.get("reasoning")
        self.reasoning += thought if isinstance(thought, str) else ""
        if choice.get("finish_reason") is not None:
            self.finish, self.matched = choice["finish_reason"], choice.get("matched_stop")
        lp = choice.get("logprobs")
        if self.keep_logprobs and isinstance(lp, dict):
            if isinstance(lp.get("content"), list):
                self.content_lp.extend(lp["content"])  # type: ignore[arg-type]
            for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                values = lp.get(key)
                if isinstance(values, list):
                    self.legacy.setdefault(key, []).extend(values)

    def choice(self) -> JSONObject:
        logprobs: JSONValue = None
        if self.keep_logprobs:
            logprobs = {"content": self.content_lp} if self.chat else dict(self.legacy)
        if self.chat:
            message: JSONObject = {"role": "assistant", "content": self.text,
                                   "reasoning_content": self.reasoning or None,
                                   "tool_calls": None}
            return {"index": 0, "message": message, "logprobs": logprobs,
                    "finish_reason": self.finish, "matched_stop": self.matched}
        return {"index": 0, "text": self.text, "logprobs": logprobs,
                "finish_reason": self.finish, "matched_stop": self.matched}


def assemble(
    request: GenerateRequest, chunks: Sequence[Chunk], keep_logprobs: bool
) -> tuple[bytes, JSONObject]:
    """A non-streamed answer (raw and parsed) from the chunks of a streamed one. Events are
    parsed again only where they carry more than text (the head, a finish, usage, reasoning,
    logprobs the client asked for); a plain chunk adds its text."""
    chat = request.route is Route.CHAT
    answer = _Answer(chat, keep_logprobs)
    head: JSONObject | None = None
    # The answer's usage is the last one the engine sent (a running count on every chunk).
    last_usage = max((i for i, c in enumerate(chunks) if c.usage is not None), default=-1)
    for index, chunk in enumerate(chunks):
        if head is not None and index != last_usage and not keep_logprobs and _plain(chunk):
            answer.text += chunk.text
            continue
        event = json.loads(chunk.raw)
        if isinstance(event, dict):
            head = event if head is None else head
            answer.add(event)
    head = head or {}
    body: JSONObject = {
        "id": head.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created"), "model": head.get("model"),
        "choices": [answer.choice()], "usage": answer.usage,
    }
    return _dumps(body), body
