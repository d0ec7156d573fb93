"""Protobuf <-> core types: requests become the OpenAI body REST would send; results go back."""

from __future__ import annotations

from typing import Union

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn.errors import BadRequest
from lkn.lifecycle import Exchange
from lkn.types import Decision, JSONObject, JSONValue, Mode, ModelCard, Route, Usage

#: Both request messages carry the same input fields.
InputMessage = Union[pb.GenerateRequest, pb.ProbeRequest]

_OVERRIDES: dict[int, str | None] = {
    pb.MODE_AUTO: None, pb.MODE_FLUIDO: "fluido", pb.MODE_ANALITICO: "analitico",
}  # fmt: skip
_MODES = {Mode.FLUIDO: pb.MODE_FLUIDO, Mode.ANALITICO: pb.MODE_ANALITICO}
#: Optional sampling fields, copied under the same name into the OpenAI body when set.
_SAMPLING = (
    "max_tokens", "temperature", "top_p", "top_k", "min_p", "seed",
    "presence_penalty", "frequency_penalty", "repetition_penalty",
)  # fmt: skip


def request_body(message: InputMessage, stream: bool) -> tuple[Route, JSONObject]:
    """The route and OpenAI request body equivalent to ``message``."""
    body: JSONObject = {}
    which = message.WhichOneof("input")
    if which == "chat":
        route = Route.CHAT
        messages: list[JSONValue] = []
        for m in message.chat.messages:
            item: JSONObject = {"role": m.role, "content": m.content}
            if m.name:
                item["name"] = m.name
            messages.append(item)
        body["messages"] = messages
    elif which == "prompt":
        route = Route.COMPLETION
        body["prompt"] = message.prompt
    else:
        raise BadRequest("the request needs an input: set 'chat' or 'prompt'", param="input")
    if message.model:
        body["model"] = message.model
    sampling = message.sampling
    for name in _SAMPLING:
        if sampling.HasField(name):
            value: int | float = getattr(sampling, name)
            body[name] = value
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if stream:
        body["stream"] = True
        # Usage is always reported in the final message, whatever the client asked.
        body["stream_options"] = {"include_usage": True}
    return route, body


def mode_override(value: int) -> str | None:
    """The core's override for a request's ``mode`` (None: let the gateway decide)."""
    if value not in _OVERRIDES:
        raise BadRequest(f"unknown mode {value}", param="mode")
    return _OVERRIDES[value]


def decision(d: Decision) -> pb.Decision:
    out = pb.Decision(
        mode=_MODES[d.mode],
        strategy=d.strategy,
        signals=d.signals,
        entropies=d.entropies,
        tail_mass=d.tail_mass,
        top_tokens=[
            pb.TokenPosition(tokens=[pb.TopToken(token=t.token, logprob=t.logprob) for t in pos])
            for pos in d.top_tokens
        ],
        fallback=d.fallback or "",
        applied=d.applied,
    )
    if d.score is not None:
        out.score = d.score
    if d.threshold is not None:
        out.threshold = d.threshold
    if d.probe_latency_ms is not None:
        out.probe_latency_ms = d.probe_latency_ms
    return out


def usage(u: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
    )


def start(client_request_id: str, generation: Exchange) -> pb.GenerateResponse:
    return pb.GenerateResponse(
        start=pb.GenerateStart(
            request_id=client_request_id,
            gateway_request_id=generation.request_id,
            engine=generation.engine,
            decision=decision(generation.decision),
        )
    )


def delta(text: str, reasoning: str) -> pb.GenerateResponse:
    return pb.GenerateResponse(delta=pb.TextDelta(text=text, reasoning=reasoning))


def finish(generation: Exchange) -> pb.GenerateResponse:
    end = pb.GenerateFinish(finish_reason=generation.finish_reason or "")
    if generation.usage is not None:
        end.usage.CopyFrom(usage(generation.usage))
    return pb.GenerateResponse(finish=end)


def model(card: ModelCard) -> pb.Model:
    out = pb.Model(id=card.id, owned_by=card.owned_by, root=card.root or card.id)
    if card.max_model_len is not None:
        out.max_model_len = card.max_model_len
    return out
