"""Protobuf <-> core types: requests become the OpenAI body REST would send; results go back."""

from __future__ import annotations

import json
from typing import Union

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn.errors import BadRequest
from lkn.exchange import Exchange
from lkn.values import Chunk, Decision, JSONObject, JSONValue, Mode, ModelCard, Route, Usage

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
        body["messages"] = _chat_messages(message.chat)
    elif which == "prompt":
        route = Route.COMPLETION
        body["prompt"] = message.prompt
    else:
        raise BadRequest("the request needs an input: set 'chat' or 'prompt'", param="input")
    if message.model:
        body["model"] = message.model
    if isinstance(message, pb.GenerateRequest) and message.tools:
        if route is not Route.CHAT:
            raise BadRequest("tools need a chat input", param="tools")
        body["tools"] = _tools(message)
    body.update(_sampling(message.sampling))
    if stream:
        body["stream"] = True
        # Usage is always reported in the final message, whatever the client asked.
        body["stream_options"] = {"include_usage": True}
    return route, body


def _chat_messages(chat: pb.Chat) -> list[JSONValue]:
    """A chat's messages as OpenAI message objects (empty fields left out)."""
    messages: list[JSONValue] = []
    for m in chat.messages:
        item: JSONObject = {"role": m.role, "content": m.content}
        if m.name:
            item["name"] = m.name
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            item["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]  # fmt: skip
        messages.append(item)
    return messages


def _sampling(sampling: pb.SamplingParams) -> JSONObject:
    """The sampling fields that are set, under their OpenAI names (``stop`` as a list)."""
    fields: JSONObject = {}
    for name in _SAMPLING:
        if sampling.HasField(name):
            value: int | float = getattr(sampling, name)
            fields[name] = value
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    return fields


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
        intervention=d.intervention,
        policy=d.policy or "",
        shed=d.shed or "",
    )
    if d.score is not None:
        out.score = d.score
    if d.threshold is not None:
        out.threshold = d.threshold
    if d.probe_latency_ms is not None:
        out.probe_latency_ms = d.probe_latency_ms
    return out


def _number(value: JSONValue) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def homeostat(state: JSONObject) -> pb.HomeostatState:
    """The homeostat's state (:meth:`lkn.decision.homeostat.Homeostat.state`) as protobuf."""
    load = state.get("load")
    points = state.get("set_points")
    load = load if isinstance(load, dict) else {}
    points = points if isinstance(points, dict) else {}
    out = pb.HomeostatState(
        threshold=_number(state.get("threshold")),
        base_threshold=_number(state.get("base_threshold")),
        window=int(_number(state.get("window"))),
        shed_level=str(state.get("shed_level") or ""),
        load=pb.HomeostatLoad(in_flight=int(_number(load.get("in_flight"))),
                              limit=int(_number(load.get("limit"))),
                              pressure=_number(load.get("pressure"))),
        set_points=pb.HomeostatSetPoints(queue=_number(points.get("queue")),
                                         ttft_s=_number(points.get("ttft_s")),
                                         restore=_number(points.get("restore")),
                                         shedding=points.get("shedding") is True),
    )
    for key in ("target_rate", "realised_rate"):
        if isinstance(state.get(key), (int, float)):
            setattr(out, key, _number(state.get(key)))
    for key in ("queue", "ttft_p90_s"):
        if isinstance(load.get(key), (int, float)):
            setattr(out.load, key, _number(load.get(key)))
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


def delta(chunk: Chunk) -> pb.GenerateResponse:
    """Text, reasoning and tool-call pieces of one chunk (the servicer skips empty ones)."""
    out = pb.TextDelta(text=chunk.text, reasoning=chunk.reasoning)
    for call in chunk.tool_calls:
        out.tool_calls.append(pb.ToolCallDelta(
            index=call.index, id=call.id, type=call.type, name=call.name,
            arguments=call.arguments,
        ))  # fmt: skip
    return pb.GenerateResponse(delta=out)


def _tools(message: pb.GenerateRequest) -> list[JSONValue]:
    tools: list[JSONValue] = []
    for position, tool in enumerate(message.tools):
        if not tool.name:
            raise BadRequest(f"tools[{position}].name is empty: a tool needs a name",
                             param=f"tools[{position}].name")
        function: JSONObject = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        if tool.parameters_json:
            try:
                parameters: JSONValue = json.loads(tool.parameters_json)
            except ValueError as exc:
                raise BadRequest(
                    f"tools[{position}].parameters_json is not valid JSON: {exc}",
                    param=f"tools[{position}].parameters_json") from None  # fmt: skip
            if not isinstance(parameters, dict):
                raise BadRequest(f"tools[{position}].parameters_json must be a JSON object",
                                 param=f"tools[{position}].parameters_json")  # fmt: skip
            function["parameters"] = parameters
        tools.append({"type": "function", "function": function})
    return tools


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
