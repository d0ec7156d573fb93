"""Engine bodies and answers around a held generation (see :mod:`lkn.speculative`).

The ANALITICO restart's body keeps the prompt the engine has already prefilled: the
instruction goes after the conversation, so the radix cache reuses everything before it.
As the start of the answer (``answer``, the default: an assistant message the engine
continues, ``continue_final_message``), only that prefix is prefilled again; as a user
message of its own (``message``), the new message and the assistant header; appended to
the last user message (``after``), also the chat template's end-of-turn tokens after that
message. An engine that refuses a body (a 4xx before any token: a chat template that
rejects two user turns in a row, an engine without continuation) gets the next one. A
non-streamed FLUIDO answer is put back together from the stream the engine sent. Logprobs
the client did not ask for are removed from chunks. Pure functions; bounded work per chunk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

from lkn.config import DecisionSettings
from lkn.decision.intervention import add_instruction
from lkn.types import Chunk, Decision, GenerateRequest, JSONObject, JSONValue, Mode, Route

_SEPARATOR = "\n\n"


def _dumps(value: JSONValue) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _appended(content: JSONValue, instruction: str) -> JSONValue:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": instruction}]
    if isinstance(content, str) and content.strip():
        return content + _SEPARATOR + instruction
    return instruction


def append_instruction(body: JSONObject, instruction: str, own_message: bool = False) -> JSONObject:
    """``body`` with the instruction after the conversation (``body`` is not mutated): a user
    message of its own at the end (``own_message``), else appended to the last user message."""
    messages = body.get("messages")
    if isinstance(messages, list) and own_message and messages:
        return {**body, "messages": [*messages, {"role": "user", "content": instruction}]}
    if isinstance(messages, list):
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if isinstance(message, dict) and message.get("role") == "user":
                updated = list(messages)
                updated[index] = {**message,
                                  "content": _appended(message.get("content"), instruction)}
                return {**body, "messages": updated}
        return {**body, "messages": [*messages, {"role": "user", "content": instruction}]}
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return {**body, "prompt": prompt + _SEPARATOR + instruction}
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return {**body, "prompt": [prompt[0] + _SEPARATOR + instruction]}
    return body


def continue_answer(body: JSONObject, prefix: str) -> JSONObject | None:
    """``body`` whose answer starts with ``prefix`` (an assistant message the engine
    continues); None where that cannot be done (no messages, no prefix, or the client's own
    last message is already an assistant turn to continue)."""
    messages = body.get("messages")
    if not (isinstance(messages, list) and messages and prefix):
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") == "assistant":
        return None
    return {**body, "messages": [*messages, {"role": "assistant", "content": prefix}],
            "continue_final_message": True}


#: A restart body and where it puts the instruction (None: no instruction moved).
PlacedBody = tuple[str | None, JSONObject]


def restart_bodies(
    request: GenerateRequest,
    decision: Decision,
    body_for: Callable[[Decision], JSONObject],
    settings: DecisionSettings,
) -> list[PlacedBody]:
    """The bodies of the request that replaces a dropped held generation, the first to try
    first, each with the placement it gives the instruction: the intervention the policy
    chose, with the instruction moved after the conversation when it is the one instruction
    placed in the system prompt (other interventions are left as they are: placement None).
    The later bodies are the next placements down (``answer``, then ``message``, then
    ``after``), for an engine that rejects the former."""
    chosen = body_for(decision)
    placement = settings.restart_placement
    if not (decision.mode is Mode.ANALITICO and decision.applied
            and placement in ("after", "message", "answer")):  # fmt: skip
        return [(None, chosen)]
    untouched = body_for(replace(decision, applied=False))
    seed = add_instruction(untouched, settings.intervention)
    for key in ("messages", "prompt"):
        if not (key in chosen and _in_system_prompt(chosen, untouched, seed, key)):
            continue
        appended = append_instruction(untouched, settings.intervention)
        # The client's own answer prefix to continue: the instruction goes before it.
        if placement == "after" or key != "messages" or untouched.get("continue_final_message"):
            return [("after", {**chosen, key: appended[key]})]
        bodies: list[PlacedBody] = []
        answer = continue_answer(untouched, settings.restart_prefix)
        if placement == "answer" and answer is not None:
            bodies.append(("answer", {**chosen, key: answer[key],
                                      "continue_final_message": True}))
        own = append_instruction(untouched, settings.intervention, own_message=True)
        return [*bodies, ("message", {**chosen, key: own[key]}),
                ("after", {**chosen, key: appended[key]})]
    return [(None, chosen)]


def _in_system_prompt(chosen: JSONObject, untouched: JSONObject, seed: JSONObject,
                      key: str) -> bool:  # fmt: skip
    """Whether ``chosen`` differs from ``untouched`` at ``key`` only by the instruction in the
    system prompt: the seed's placement, or (chat) a system message the care added or
    rewrote, e.g. the instruction under the model's own default system prompt."""
    ours, theirs = chosen.get(key), untouched.get(key)
    if ours == theirs:
        return False
    if ours == seed.get(key):
        return True
    if key != "messages" or not isinstance(ours, list) or not isinstance(theirs, list):
        return False
    if not ours or not isinstance(ours[0], dict) or ours[0].get("role") != "system":
        return False
    if ours[1:] == theirs:
        return True  # a system message added
    first = theirs[0] if theirs else None
    return isinstance(first, dict) and first.get("role") == "system" and ours[1:] == theirs[1:]


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


def _events(chunks: Sequence[Chunk]) -> list[JSONObject]:
    events = []
    for chunk in chunks:
        event = json.loads(chunk.raw)
        if isinstance(event, dict):
            events.append(event)
    return events


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
    """A non-streamed answer (raw and parsed) from the chunks of a streamed one."""
    events = _events(chunks)
    head = events[0] if events else {}
    chat = request.route is Route.CHAT
    answer = _Answer(chat, keep_logprobs)
    for event in events:
        answer.add(event)
    body: JSONObject = {
        "id": head.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created"), "model": head.get("model"),
        "choices": [answer.choice()], "usage": answer.usage,
    }
    return _dumps(body), body
