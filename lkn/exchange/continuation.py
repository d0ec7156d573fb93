"""The continuation of a cut stream: whether a request can be continued at all, how much of
its budget the delivered text spent, and the body that asks an engine to go on."""

from __future__ import annotations

from lkn.engines import EngineClient
from lkn.errors import LknError
from lkn.values import GenerateRequest, JSONObject, JSONValue, Route

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
