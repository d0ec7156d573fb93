"""The ANALITICO intervention: the verification instruction, added once, body never mutated.

Chat: merged into the first ``system`` (or ``developer``) message, or inserted as the first
message when there is none, so the engine never sees two system messages. Completions: the
prompt is prefixed. Only the containers on the path to the change are copied.
"""

from __future__ import annotations

from lkn.values import JSONObject, JSONValue

_SEPARATOR = "\n\n"
_SYSTEM_ROLES = ("system", "developer")


def _mentions(content: JSONValue, instruction: str) -> bool:
    if isinstance(content, str):
        return instruction in content
    if isinstance(content, list):
        return any(
            isinstance(part, dict) and isinstance(part.get("text"), str)
            and instruction in str(part.get("text"))
            for part in content
        )
    return False


def _merged(content: JSONValue, instruction: str) -> JSONValue:
    if isinstance(content, str) and content.strip():
        return content + _SEPARATOR + instruction
    if isinstance(content, list):
        return [*content, {"type": "text", "text": instruction}]
    return instruction


def _chat(body: JSONObject, instruction: str) -> JSONObject:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    first: int | None = None
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") in _SYSTEM_ROLES:
            if _mentions(message.get("content"), instruction):
                return body
            if first is None:
                first = index
    updated: list[JSONValue] = list(messages)
    if first is None:
        updated.insert(0, {"role": "system", "content": instruction})
    else:
        original = messages[first]
        assert isinstance(original, dict)
        message = dict(original)
        message["content"] = _merged(original.get("content"), instruction)
        updated[first] = message
    out = dict(body)
    out["messages"] = updated
    return out


def _prefixed(prompt: str, instruction: str) -> str:
    if prompt.startswith(instruction):
        return prompt
    return instruction + _SEPARATOR + prompt


def _completion(body: JSONObject, instruction: str) -> JSONObject:
    prompt = body.get("prompt")
    new: JSONValue
    if isinstance(prompt, str):
        new = _prefixed(prompt, instruction)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        new = [_prefixed(p, instruction) for p in prompt if isinstance(p, str)]
    else:
        # Token-id prompts cannot be prefixed without the engine's tokenizer.
        return body
    if new == prompt:
        return body
    out = dict(body)
    out["prompt"] = new
    return out


def add_instruction(body: JSONObject, instruction: str) -> JSONObject:
    """``body`` with the instruction added exactly once (``body`` itself if nothing changes)."""
    if not instruction:
        return body
    if "messages" in body:
        return _chat(body, instruction)
    return _completion(body, instruction)


def _appended(content: JSONValue, instruction: str) -> JSONValue:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": instruction}]
    if isinstance(content, str) and content.strip():
        return content + _SEPARATOR + instruction
    return instruction


def append_instruction(body: JSONObject, instruction: str, own_message: bool = False,
                       once: bool = False) -> JSONObject:  # fmt: skip
    """``body`` with the instruction after the conversation (``body`` is not mutated): a user
    message of its own at the end (``own_message``), else appended to the last user message
    or the prompt; with ``once``, not again where the text already ends with it."""
    if once and _ends_with(body, instruction):
        return body
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


def _ends_with(body: JSONObject, instruction: str) -> bool:
    """Whether the last user message (or the prompt) already ends with ``instruction``."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return isinstance(content, str) and content.endswith(instruction)
        return False
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return isinstance(prompt, str) and prompt.endswith(instruction)
