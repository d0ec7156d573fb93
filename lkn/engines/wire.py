"""Engine wire format -> typed results: chunks, usage and errors (probe logprobs:
:mod:`lkn.engines.probes`, re-exported here).

Every SGLang error form becomes one typed :class:`~lkn.errors.EngineError`:
HTTP error statuses (with SGLang's flat or OpenAI's nested error bodies), the in-stream
``{"error": ...}`` event, and an abort finish reason (OpenAI ``"abort"`` or native
``{"type": "abort", "status_code": ...}``) inside a 200 stream.
"""

from __future__ import annotations

import json
import re
from typing import cast

from lkn.engines.probes import probe_positions as probe_positions
from lkn.errors import (
    EngineError,
    EngineOverloaded,
    EngineRateLimited,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
)
from lkn.privacy import scrub
from lkn.values import Chunk, JSONObject, JSONValue, ToolCallDelta, Usage

#: Statuses that say "at capacity, come back later": 429 and 503 (SGLang's full queue and
#: its request timeouts) and 529 (overloaded). They never count against an engine.
OVERLOAD_STATUSES = frozenset({429, 503, 529})

#: Delta / message keys that carry reasoning text: SGLang and DeepSeek say
#: ``reasoning_content``, vLLM and OpenRouter ``reasoning``.
REASONING_KEYS = ("reasoning_content", "reasoning")


def error_for_status(
    status: int, message: str, engine: str, retry_after: float | None = None
) -> EngineError:
    """Map an engine status code to the typed error the gateway raises."""
    message = scrub(message)  # engines quote the request back: keep it out of logs and bodies
    text = f"engine {engine}: {message}" if message else f"engine {engine} answered {status}"
    if status in (408, 504):
        return EngineTimeout(text, engine=engine, upstream_status=status)
    if status == 429:
        return EngineRateLimited(
            text, engine=engine, upstream_status=status, retry_after=retry_after
        )
    if status in OVERLOAD_STATUSES:
        return EngineOverloaded(
            text, engine=engine, upstream_status=status, retry_after=retry_after
        )
    if 400 <= status < 500:
        return EngineRejected(message or text, engine=engine, upstream_status=status)
    return EngineError(text, engine=engine, upstream_status=status)


def error_message(body: bytes) -> str:
    """The human message inside any SGLang / OpenAI / llama.cpp error body (or its text)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500]
    return _message_of(data) or body.decode("utf-8", "replace").strip()[:500]


def _message_of(data: JSONValue) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if key in data:
                found = _message_of(data[key])
                if found:
                    return found
    return ""


def _status_of(data: JSONValue) -> int | None:
    if isinstance(data, dict):
        for key in ("code", "status_code"):
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.isdigit():
                return int(value)
    return None


def raise_for_event(event: JSONObject, engine: str) -> None:
    """Raise if a streamed (or 200 non-streamed) event reports a failure."""
    if "error" in event:
        err = event["error"]
        status = _status_of(err) or 500
        raise error_for_status(status, _message_of(err) or "error event in stream", engine)
    choices = event.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason") == "abort":
                raise EngineUnavailable(
                    f"engine {engine} aborted the request", engine=engine, upstream_status=503
                )
    meta = event.get("meta_info")
    if isinstance(meta, dict):
        reason = meta.get("finish_reason")
        if isinstance(reason, dict) and reason.get("type") == "abort":
            status = _status_of(reason) or 503
            message = reason.get("message")
            raise error_for_status(
                status, message if isinstance(message, str) else "request aborted", engine
            )


def parse_usage(value: JSONValue) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    total = value.get("total_tokens")
    p = prompt if isinstance(prompt, int) else 0
    c = completion if isinstance(completion, int) else 0
    return Usage(p, c, total if isinstance(total, int) else p + c)


#: Pieces of ``_PLAIN``: a JSON string's body (captured), a JSON integer (captured or not),
#: a string without escapes, and the null fields a plain delta may carry.
_STR = r'"((?:[^"\\\x00-\x1f]|\\.)*)"'
_NUM = r"(?:0|[1-9][0-9]*)"
_INT = f"({_NUM})"
_NAME = r'"[^"\\\x00-\x1f]*"'
_NULL = r'"(?:role|reasoning_content|reasoning|tool_calls)":null|"role":"assistant"'
#: The event most of a stream is made of, as SGLang writes it (compact JSON, keys in its
#: order): one choice whose delta (chat) or text (completions) carries text only, no finish,
#: no logprobs, usage absent, null or a plain running count. Such an event says nothing but
#: its text (and usage), so it is read with this one match; any other event is parsed in full.
_PLAIN = re.compile(
    r'\{"id":' + _NAME + r',"object":"(?:chat\.completion\.chunk|text_completion)","created":'
    + _NUM + r',"model":' + _NAME + r',"choices":\[\{"index":0,(?:"delta":\{(?:(?:' + _NULL
    + r'),)*"content":' + _STR + r"(?:,(?:" + _NULL + r'))*\}|"text":' + _STR
    + r'),"logprobs":null,"finish_reason":null(?:,"matched_stop":null)?\}\]'
    + r'(?:,"usage":(?:null|\{"prompt_tokens":' + _INT + r',"total_tokens":' + _INT
    + r',"completion_tokens":' + _INT + r'(?:,"reasoning_tokens":' + _NUM + r')?\}))?\}'
)


def _plain_chunk(raw: bytes) -> Chunk | None:
    """The chunk of a plain text event (see ``_PLAIN``), or None for any other event."""
    try:
        match = _PLAIN.fullmatch(raw.decode())
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    content, text, prompt, total, completion = match.groups()
    delta = content if content is not None else text
    if "\\" in delta:
        try:
            delta = json.loads(f'"{delta}"')
        except ValueError:
            return None
    if prompt is None:
        return Chunk(raw=raw, text=delta)
    return Chunk(raw=raw, text=delta, usage=Usage(int(prompt), int(completion), int(total)))


def sse_payloads(lines: list[bytes]) -> list[bytes]:
    """The non-empty ``data:`` payloads among SSE lines (comments and other fields dropped)."""
    return [payload for line in lines
            if line.startswith(b"data:") and (payload := line[5:].strip())]


def parse_chunk(raw: bytes, engine: str) -> Chunk:
    """Parse one SSE ``data:`` payload of an OpenAI-style stream (chat or completions)."""
    plain = _plain_chunk(raw)
    return plain if plain is not None else _parse_event(raw, engine)


def _parse_event(raw: bytes, engine: str) -> Chunk:
    """Any stream event, parsed in full."""
    try:
        event = json.loads(raw.decode())
    except ValueError:
        raise EngineError(
            f"engine {engine} sent a malformed stream event", engine=engine
        ) from None
    if not isinstance(event, dict):
        raise EngineError(f"engine {engine} sent a malformed stream event", engine=engine)
    # Every failure form has "error" or "abort" in its bytes; skip the walk otherwise.
    if b'"error"' in raw or b"abort" in raw:
        raise_for_event(event, engine)
    chunk = Chunk(raw=raw, usage=parse_usage(event.get("usage")))
    choices = event.get("choices")
    if isinstance(choices, list):
        if not choices:
            chunk.usage_only = chunk.usage is not None
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str):
                    chunk.text += content
                chunk.reasoning += reasoning_of(delta)
                calls = delta.get("tool_calls")
                if isinstance(calls, list) and calls:
                    chunk.tool_call = True
                    chunk.tool_calls += tool_call_deltas(calls)
            else:
                text = choice.get("text")
                if isinstance(text, str):
                    chunk.text += text
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                chunk.finish_reason = reason
    return chunk


def reasoning_of(delta: JSONObject) -> str:
    """The reasoning text of a delta or message, whichever key the engine used."""
    for key in REASONING_KEYS:
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def tool_call_deltas(calls: list[JSONValue]) -> tuple[ToolCallDelta, ...]:
    """The tool-call pieces of one delta, as sent (missing parts stay empty)."""
    out: list[ToolCallDelta] = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        index = call.get("index")
        function = call.get("function")
        fn: JSONObject = function if isinstance(function, dict) else {}
        out.append(ToolCallDelta(
            index=index if isinstance(index, int) and not isinstance(index, bool) else position,
            id=_text(call.get("id")),
            type=_text(call.get("type")),
            name=_text(fn.get("name")),
            arguments=_text(fn.get("arguments")),
        ))  # fmt: skip
    return tuple(out)


def _text(value: JSONValue) -> str:
    return value if isinstance(value, str) else ""


def deliver_reasoning(raw: bytes, reasoning: str, field: str) -> bytes:
    """An engine's chat chunk or completion body with its reasoning text under the key(s)
    the client asked for (``reasoning_content``, ``reasoning`` or ``both``).

    ``reasoning`` is the text the parser found (empty: the payload is returned as is, so
    SGLang's ``"reasoning_content": null`` costs nothing). Only payloads that carry reasoning
    text under another key are rewritten.
    """
    if not reasoning:
        return raw
    wanted = REASONING_KEYS if field == "both" else (field,)
    event = json.loads(raw)
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list):
        return raw
    changed = False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        part = choice.get("delta", choice.get("message"))
        if not isinstance(part, dict):
            continue
        text = reasoning_of(part)
        if not text or all(part.get(key) == text for key in wanted) and not any(
            part.get(key) for key in REASONING_KEYS if key not in wanted
        ):
            continue
        for key in REASONING_KEYS:
            part.pop(key, None)
        for key in wanted:
            part[key] = text
        changed = True
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() if changed else raw


def parse_completion(body: JSONObject) -> tuple[str, str | None, Usage | None]:
    """Text, finish reason and usage of a non-streamed chat or completions body."""
    text = ""
    finish: str | None = None
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            text = content if isinstance(content, str) else ""
        elif isinstance(first.get("text"), str):
            text = cast(str, first["text"])
        reason = first.get("finish_reason")
        finish = reason if isinstance(reason, str) else None
    return text, finish, parse_usage(body.get("usage"))
