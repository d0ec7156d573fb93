"""How reasoning text and the decision note reach REST clients.

Engines name the reasoning field differently: SGLang and DeepSeek send
``reasoning_content``, vLLM and OpenRouter ``reasoning``; the parser reads both
(:mod:`lkn.engines.wire`). Clients get it under the key they ask for: header
``X-LKN-Reasoning-Field: reasoning_content | reasoning | both``, else ``LKN_REASONING_FIELD``
(default ``reasoning_content``, the de-facto OpenAI-compatible field that Open WebUI, the
DeepSeek API and SGLang use). Chunks that carry no reasoning text pass through byte for byte.

The decision note (``LKN_DECISION_NOTE``, off by default) is one short line saying how the
gateway decided, e.g. ``L-kn: ANALITICO by rules (maths, multi-step); verification
instruction added``. It goes into the reply as reasoning, never as content: Open WebUI
shows it as a folded reasoning block above the answer and, for an OpenAI connection, does
not send reasoning back in later turns (``get_reasoning_format`` returns None there). It
is added to chat replies only, and never to Open WebUI's housekeeping requests (titles,
tags, follow-ups), whose text Open WebUI reads.
"""

from __future__ import annotations

import json

from lkn.config import REASONING_FIELDS
from lkn.engines.wire import REASONING_KEYS, deliver_reasoning, reasoning_of
from lkn.errors import BadRequest
from lkn.values import Chunk, Decision, JSONObject, JSONValue, Mode

HEADER = "X-LKN-Reasoning-Field"

_SIGNALS = {
    "math": "maths",
    "multi_step": "multi-step",
    "code": "code",
    "long_prompt": "long prompt",
    "override": "mode chosen by the client",
}


def reasoning_field(header: str | None, default: str) -> str:
    """The reasoning key(s) a client asked for (400 for an unknown value)."""
    if header is None:
        return default
    value = header.strip().lower()
    if value not in REASONING_FIELDS:
        raise BadRequest(
            f"{HEADER} must be one of {', '.join(REASONING_FIELDS)}", param=HEADER,
            code="invalid_header",
        )
    return value


def decision_note(decision: Decision) -> str | None:
    """The note for a reply, or None where none is added (housekeeping, no decision)."""
    if not decision.gets_care:
        return None
    reasons = [_SIGNALS.get(s, s.replace("_", " ")) for s in decision.signals]
    if decision.score is not None and decision.threshold is not None:
        relation = ">" if decision.score > decision.threshold else "<="
        reasons.append(f"score {decision.score:.2f} {relation} {decision.threshold:.2f}")
    if decision.fallback:
        reasons.append(f"fallback: {decision.fallback}")
    why = f" ({', '.join(reasons)})" if reasons else ""
    if not decision.applied:
        action = "reported only, request unchanged"
    elif decision.mode is Mode.ANALITICO:
        action = "verification instruction added"
    else:
        action = "passed through unchanged"
    return f"L-kn: {decision.mode.value} by {decision.strategy}{why}; {action}\n"


def _put(part: JSONObject, text: str, field: str) -> None:
    for key in REASONING_KEYS if field == "both" else (field,):
        before = part.get(key)
        part[key] = text + before if isinstance(before, str) else text


class Delivery:
    """Per request: the reasoning key(s) and the note still to send."""

    def __init__(self, field: str, note: str | None) -> None:
        self.field = field
        self.note = note

    def payload(self, chunk: Chunk) -> bytes:
        """The client's bytes for an engine chunk."""
        if not chunk.reasoning or (
            self.field == "reasoning_content" and b'"reasoning":' not in chunk.raw
        ):
            return chunk.raw
        return deliver_reasoning(chunk.raw, chunk.reasoning, self.field)

    def note_event(self, first: Chunk) -> bytes | None:
        """A chunk with the note as reasoning, shaped like the engine's first chunk (same
        id, model and created), to send before it; None once sent or when there is none."""
        note, self.note = self.note, None
        if note is None:
            return None
        try:
            engine: JSONValue = json.loads(first.raw)
        except ValueError:
            return None
        if not isinstance(engine, dict) or engine.get("object") != "chat.completion.chunk":
            return None
        delta: JSONObject = {"role": "assistant"}
        _put(delta, note, self.field)
        event: JSONObject = {
            key: engine[key] for key in ("id", "object", "created", "model") if key in engine
        }
        event["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()

    def body(self, raw: bytes) -> bytes:
        """A non-streamed chat body: reasoning under the asked key(s), the note first."""
        note, self.note = self.note, None
        if note is None and (b'"reasoning' not in raw or (
                self.field == "reasoning_content" and b'"reasoning":' not in raw)):
            return raw
        try:
            body: JSONValue = json.loads(raw)
        except ValueError:
            return raw
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            return raw
        for choice in choices:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            text = reasoning_of(message)
            for key in REASONING_KEYS:
                if key in message:
                    message[key] = None
            if text:
                _put(message, text, self.field)
            if note is not None:
                _put(message, note, self.field)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
