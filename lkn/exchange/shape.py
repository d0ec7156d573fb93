"""The shape of an answer (streamed, whole, decision only) and what it changes in the
request: the default budget, whether the loop guard can watch it, its stream options."""

from __future__ import annotations

import enum
from dataclasses import replace

from lkn.values import GenerateRequest, JSONObject, JSONValue


class Shape(enum.Enum):
    STREAM = "stream"
    COMPLETE = "complete"
    DECISION = "decision"


def budget_of(body: JSONObject) -> JSONValue:
    """The token budget a body sets (``max_tokens``, else ``max_completion_tokens``)."""
    budget = body.get("max_tokens")
    return body.get("max_completion_tokens") if budget is None else budget


def with_default_budget(request: GenerateRequest, budget: int) -> GenerateRequest:
    """No budget from the client: ``LKN_DEFAULT_MAX_TOKENS``, on every path to the engine
    (the held generation, its restart, the vote and the plain request alike)."""
    body = request.body
    if budget and budget_of(body) is None:
        return replace(request, body={**body, "max_tokens": budget})
    return request


def guardable(request: GenerateRequest, shape: Shape) -> bool:
    """Whether the loop guard can watch this answer: one answer of text, streamed or not (a
    non-streamed one is read as a stream, so none with tools or echo, which the rebuilt
    answer would not carry)."""
    body = request.body
    if shape is Shape.DECISION or body.get("n") not in (None, 1):
        return False
    return shape is Shape.STREAM or not (body.get("tools") or body.get("functions")
                                         or body.get("echo"))


def read_as_stream(request: GenerateRequest, stream_above: int) -> bool:
    """Whether a non-streamed answer the loop guard watches is read from the engine as a
    stream, so that the guard can stop the engine at a loop: when its budget is above
    ``stream_above`` (``LKN_LOOP_STREAM_ABOVE``) or unbounded, or when it asked for logprobs
    (the rebuilt answer carries those of the text it keeps). A shorter answer is asked for
    whole and checked once it is in: a loop then costs the engine at most that budget."""
    body = request.body
    budget = budget_of(body)
    if not isinstance(budget, int) or not stream_above or body.get("logprobs"):
        return True
    return budget > stream_above


def with_stream_options(body: JSONObject, request: GenerateRequest, guarded: bool,
                        frontend: str) -> JSONObject:  # fmt: skip
    """The engine body's ``stream_options``: usage always (the gateway counts it); with the
    loop guard, usage on every chunk, so that an answer the guard ends still has its own;
    only where the gateway renders the answer itself (a rebuilt non-streamed answer, gRPC):
    REST stream chunks go to the client as they are, and Open WebUI adds up usage it finds
    on every chunk."""
    if not (request.stream or guarded):
        return body
    options = body.get("stream_options")
    merged: JSONObject = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    if guarded and (not request.stream or frontend != "rest"):
        merged["continuous_usage_stats"] = True
    return {**body, "stream_options": merged}
