"""One table of scenarios, run through REST and through gRPC: the answers must agree.

Each scenario runs on a fresh test double and gateway per protocol. REST and gRPC must give
the same text, finish reason, usage and decision, and fail with the same error: an HTTP
status and a gRPC code that are the pair lkn.errors assigns to one error class.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from lkn.breaker import Verdict
from lkn.errors import (
    BadRequest,
    EngineError,
    EngineOverloaded,
    EngineRateLimited,
    EngineUnavailable,
    Forbidden,
    ModelNotFound,
    LknError,
    NoEngineAvailable,
)
from lkn.config import HomeostatSettings
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import CARE_OPEN, GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

HELLO = [{"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Look a word up",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"},
                                                    "limit": {"type": "integer"}}}}}]


def trip_breakers(gw: GatewayUnderTest) -> None:
    for engine in gw.gateway.pool.engines:
        while engine.breaker.available():
            engine.breaker.record(engine.breaker.acquire(), Verdict.FAILURE)


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The OpenAI body REST sends; gRPC sends its protobuf equivalent.
    body: dict[str, Any]
    stream: bool = False
    mode: str | None = None
    faults: tuple[Fault, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[GatewayUnderTest], None] | None = None
    #: The error class both protocols must report (None: success).
    error: type[LknError] | None = None
    #: The failure comes after the answer started (REST: an SSE error event after HTTP 200).
    mid_stream: bool = False
    #: Whether the text is exact (a dropped connection may lose the last buffered tokens).
    expect_mode: str = "FLUIDO"
    #: The double's top logprobs at every position (None: a confident distribution).
    top_logprobs: list[tuple[str, float]] | None = None
    #: The double answers every generation with this status (SGLang's queue-full error).
    refuse_with: int | None = None
    #: Attributes set on the test double (e.g. reasoning text and the key it uses).
    engine: dict[str, Any] = field(default_factory=dict)
    #: Care the client names (REST ``X-LKN-Intervention``, gRPC metadata).
    intervention: str | None = None


SCENARIOS = [
    Scenario("plain", {"messages": HELLO, "max_tokens": 8}),
    Scenario("streaming", {"messages": HELLO, "max_tokens": 8}, stream=True),
    Scenario("prompt", {"prompt": "once upon a time", "max_tokens": 5}),
    Scenario("stop-string", {"messages": HELLO, "stop": ["w5"], "temperature": 0.0}, stream=True),
    Scenario("analitico-override", {"messages": HELLO, "max_tokens": 8}, mode="analitico",
             expect_mode="ANALITICO"),
    Scenario("analitico-sampling-suffix", {"messages": HELLO, "max_tokens": 8}, stream=True,
             mode="analitico", expect_mode="ANALITICO",
             settings={"decision": {"care_intervention": "sampling+prompt:suffix"}}),
    Scenario("analitico-variant", {"model": "smollm2+analitico", "messages": HELLO,
                                   "max_tokens": 8}, stream=True, expect_mode="ANALITICO"),
    Scenario("breaker-open", {"messages": HELLO},
             settings={"breaker_reset": 60.0, "health_interval": 60.0},
             setup=trip_breakers, error=NoEngineAvailable),
    Scenario("bad-input", {"messages": HELLO, "temperature": 5.0}, error=BadRequest),
    Scenario("bad-input-streaming", {"messages": [], "max_tokens": 3}, stream=True,
             error=BadRequest),
    Scenario("engine-500", {"messages": HELLO}, faults=(Fault.HTTP_500,), error=EngineError),
    Scenario("engine-503-streaming", {"messages": HELLO}, stream=True, faults=(Fault.HTTP_503,),
             error=EngineUnavailable),
    Scenario("unknown-model", {"model": "gpt-4", "messages": HELLO}, error=ModelNotFound),
    Scenario("unknown-model-streaming", {"model": "gpt-4", "messages": HELLO}, stream=True,
             error=ModelNotFound),
    Scenario("engine-overloaded", {"messages": HELLO}, refuse_with=503, error=EngineOverloaded),
    Scenario("engine-rate-limited-streaming", {"messages": HELLO}, stream=True, refuse_with=429,
             error=EngineRateLimited),
    Scenario("mid-stream-done-without-finish", {"messages": HELLO, "max_tokens": 10},
             stream=True, faults=(Fault.DONE_EARLY,), error=EngineError, mid_stream=True),
    Scenario("mid-stream-malformed", {"messages": HELLO, "max_tokens": 10}, stream=True,
             faults=(Fault.MALFORMED,), error=EngineError, mid_stream=True),
    Scenario("mid-stream-drop", {"messages": HELLO, "max_tokens": 10}, stream=True,
             faults=(Fault.DROP_MID_STREAM,), error=EngineError, mid_stream=True),
    Scenario("mid-stream-abort", {"messages": HELLO, "max_tokens": 10}, stream=True,
             faults=(Fault.ABORT_503,), error=EngineUnavailable, mid_stream=True),
    # Speculative FLUIDO: the generation is its own probe (released, or dropped and restarted).
    Scenario("speculative-fluido", {"messages": HELLO, "max_tokens": 8},
             settings={"decision": {"strategy": "entropy", "probe_tokens": 3}}),
    Scenario("speculative-fluido-streaming", {"messages": HELLO, "max_tokens": 8}, stream=True,
             settings={"decision": {"strategy": "entropy", "probe_tokens": 3}}),
    Scenario("speculative-prompt", {"prompt": "once upon a time", "max_tokens": 5},
             settings={"decision": {"strategy": "entropy"}}),
    Scenario("speculative-analitico-streaming", {"messages": HELLO, "max_tokens": 8},
             stream=True, settings={"decision": {"strategy": "hybrid", "probe_tokens": 2}},
             top_logprobs=[(f" w{i}", -2.302585) for i in range(10)], expect_mode="ANALITICO"),
    Scenario("speculative-analitico", {"messages": HELLO, "max_tokens": 8},
             settings={"decision": {"strategy": "entropy"}},
             top_logprobs=[(f" w{i}", -2.302585) for i in range(10)], expect_mode="ANALITICO"),
    Scenario("tool-calls-streaming", {"messages": [{"role": "user", "content": "CALL_TOOL now"}],
                                      "tools": TOOLS}, stream=True),
    Scenario("reasoning-content-key", {"messages": HELLO, "max_tokens": 4}, stream=True,
             engine={"reasoning": "let me think", "reasoning_key": "reasoning_content"}),
    Scenario("reasoning-key", {"messages": HELLO, "max_tokens": 4}, stream=True,
             engine={"reasoning": "let me think", "reasoning_key": "reasoning"}),
    # A finished answer is complete: the connection dropping after the finish is harmless.
    Scenario("finish-then-drop-streaming", {"messages": HELLO, "max_tokens": 6}, stream=True,
             faults=(Fault.DROP_AFTER_FINISH,)),
    Scenario("finish-then-drop", {"messages": HELLO, "max_tokens": 6},
             faults=(Fault.DROP_AFTER_FINISH,)),
    # The loop guard ends a repeating answer alike (REST streams carry no usage after it:
    # tests/test_loop_guard.py; gRPC streams: tests/rpc/test_loop_guard_parity.py).
    Scenario("loop-stopped", {"messages": HELLO, "max_tokens": 300},
             engine={"_reply": "Start here. " + "The same sentence said again and again. " * 40}),
    # Care a client names: refused unless allowed, bounded, and shed like any other care.
    Scenario("client-intervention-refused", {"messages": HELLO, "max_tokens": 8},
             intervention="consistency:3", error=Forbidden),
    Scenario("client-intervention-allowed", {"messages": HELLO, "max_tokens": 8}, stream=True,
             intervention="prompt:suffix", settings={"client": CARE_OPEN},
             expect_mode="ANALITICO"),
    Scenario("client-vote-shed-to-fluido", {"messages": HELLO, "max_tokens": 8},
             intervention="consistency:3", settings={"client": CARE_OPEN, "decision": {
                 "homeostat": HomeostatSettings(in_flight_limit=1)}}),
    Scenario("client-vote-over-cap", {"messages": HELLO, "max_tokens": 8},
             intervention="consistency:12", settings={"client": CARE_OPEN}, error=BadRequest),
    Scenario("max-tokens-over-cap", {"messages": HELLO, "max_tokens": 100_000},
             stream=True, error=BadRequest),
]  # fmt: skip


@dataclass
class Outcome:
    text: str = ""
    finish_reason: str | None = None
    usage: tuple[int, int, int] | None = None
    mode: str | None = None
    strategy: str | None = None
    intervention: str | None = None
    policy: str | None = None
    #: REST: the HTTP status; gRPC: the status code's name.
    status: int | str | None = None
    error_type: str | None = None
    #: How the gateway counted it (the ``outcome`` label of ``lkn_requests_total``).
    counted: str | None = None
    reasoning: str = ""
    #: Tool calls put back together: index -> (has an id, type, name, arguments).
    tool_calls: dict[int, list[Any]] = field(default_factory=dict)

    def add_call(self, index: int, call_id: str, kind: str, name: str, arguments: str) -> None:
        call = self.tool_calls.setdefault(index, [False, "", "", ""])
        call[0] = call[0] or call_id.startswith("call_")
        call[1] += kind
        call[2] += name
        call[3] += arguments


async def run_rest(gw: GatewayUnderTest, s: Scenario) -> Outcome:
    route = "/completions" if "prompt" in s.body else "/chat/completions"
    body = dict(s.body)
    if s.stream:
        body.update(stream=True, stream_options={"include_usage": True})
    headers = {"X-LKN-Mode": s.mode} if s.mode else {}
    if s.intervention:
        headers["X-LKN-Intervention"] = s.intervention
    out = Outcome()
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.v1 + route, json=body, headers=headers) as r:
            out.status = r.status
            out.mode = r.headers.get("X-LKN-Mode")
            out.strategy = r.headers.get("X-LKN-Strategy")
            out.intervention = r.headers.get("X-LKN-Intervention")
            out.policy = r.headers.get("X-LKN-Policy", "")
            if r.status != 200:
                out.error_type = (await r.json())["error"]["type"]
                return out
            if not s.stream:
                events = [await r.json()]
            else:
                events = []
                async for line in r.content:
                    if line.startswith(b":"):
                        continue  # an SSE comment: the keep-alive a slow first token gets
                    payload = line.strip().removeprefix(b"data: ")
                    if payload and payload != b"[DONE]":
                        events.append(json.loads(payload))
    for event in events:
        if "error" in event:
            out.error_type = event["error"]["type"]
        if event.get("usage"):
            u = event["usage"]
            out.usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
        for choice in event.get("choices", []):
            part = choice.get("delta") or choice.get("message") or {}
            out.text += part.get("content") or choice.get("text") or ""
            out.reasoning += part.get("reasoning_content") or ""
            for call in part.get("tool_calls") or []:
                fn = call.get("function") or {}
                out.add_call(call["index"], call.get("id") or "", call.get("type") or "",
                             fn.get("name") or "", fn.get("arguments") or "")
            out.finish_reason = choice.get("finish_reason") or out.finish_reason
    return out


def to_protobuf(s: Scenario) -> pb.GenerateRequest:
    """The gRPC request equivalent to the scenario's OpenAI body."""
    request = pb.GenerateRequest(model=s.body.get("model", ""))
    if "prompt" in s.body:
        request.prompt = s.body["prompt"]
    else:
        request.chat.messages.extend(pb.ChatMessage(**m) for m in s.body["messages"])
    for key in ("max_tokens", "temperature"):
        if key in s.body:
            setattr(request.sampling, key, s.body[key])
    request.sampling.stop.extend(s.body.get("stop", []))
    for tool in s.body.get("tools", []):
        fn = tool["function"]
        request.tools.append(pb.Tool(name=fn["name"], description=fn.get("description", ""),
                                     parameters_json=json.dumps(fn.get("parameters", {}))))
    request.mode = {None: pb.MODE_AUTO, "fluido": pb.MODE_FLUIDO,
                    "analitico": pb.MODE_ANALITICO}[s.mode]  # fmt: skip
    return request


async def run_grpc(gw: GatewayUnderTest, s: Scenario) -> Outcome:
    out = Outcome()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        metadata = (("x-lkn-intervention", s.intervention),) if s.intervention else None
        call = gateway_pb2_grpc.GatewayStub(channel).Generate(to_protobuf(s), metadata=metadata)
        try:
            async for message in call:
                event = message.WhichOneof("event")
                if event == "start":
                    out.mode = pb.Mode.Name(message.start.decision.mode).removeprefix("MODE_")
                    out.strategy = message.start.decision.strategy
                    out.intervention = message.start.decision.intervention
                    out.policy = message.start.decision.policy
                elif event == "delta":
                    out.text += message.delta.text
                    out.reasoning += message.delta.reasoning
                    for piece in message.delta.tool_calls:
                        out.add_call(piece.index, piece.id, piece.type, piece.name,
                                     piece.arguments)
                else:
                    out.finish_reason = message.finish.finish_reason or None
                    if message.finish.HasField("usage"):
                        u = message.finish.usage
                        out.usage = (u.prompt_tokens, u.completion_tokens, u.total_tokens)
            out.status = (await call.code()).name
        except grpc.aio.AioRpcError as exc:
            out.status = exc.code().name
            out.error_type = dict(exc.trailing_metadata() or ()).get("lkn-error-type")
    return out


async def run(s: Scenario, start_gateway: GatewayFactory, protocol: str) -> Outcome:
    async with SGLangDouble(top_logprobs=s.top_logprobs) as double:
        for name, value in s.engine.items():
            setattr(double, name, value)
        gw = await start_gateway(make_settings(double.url, **s.settings))
        if s.setup is not None:
            s.setup(gw)
        double.script(*s.faults)
        double.refuse_with = s.refuse_with
        out = await (run_rest if protocol == "rest" else run_grpc)(gw, s)
        for _ in range(100):  # a stream's end can reach the client just before it is counted
            out.counted = counted(gw, protocol)
            if out.counted is not None:
                break
            await asyncio.sleep(0.01)
        return out


def counted(gw: GatewayUnderTest, frontend: str) -> str | None:
    for metric in gw.gateway.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "lkn_requests_total" and sample.labels["frontend"] == frontend:
                return sample.labels["outcome"]
    return None


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_rest_and_grpc_agree(s: Scenario, start_gateway: GatewayFactory) -> None:
    rest = await run(s, start_gateway, "rest")
    rpc = await run(s, start_gateway, "grpc")

    if s.error is None or s.mid_stream:
        assert (rest.mode, rest.strategy) == (rpc.mode, rpc.strategy)
        assert (rest.intervention, rest.policy) == (rpc.intervention, rpc.policy)
        assert rest.mode == s.expect_mode
        care = s.intervention or s.settings.get("decision", {}).get("care_intervention",
                                                                    "prompt:system")
        assert rest.intervention == (care if rest.mode == "ANALITICO" else "none")
        # A restarted held generation says where the instruction went (the default placement).
        restarted = s.name.startswith("speculative-analitico")
        assert ("; restart answer" in (rest.policy or "")) is restarted
    # Counted once, with the same outcome, whichever front-end it came through.
    assert rest.counted is not None and rest.counted == rpc.counted
    if s.error is None:
        assert rest.counted == "200"
        assert (rest.status, rpc.status) == (200, "OK")
        assert (rest.text or rest.tool_calls) and rest.text == rpc.text
        assert rest.reasoning == rpc.reasoning == (
            s.engine["reasoning"] + " " if "reasoning" in s.engine else "")
        assert rest.tool_calls == rpc.tool_calls
        if "tools" in s.body:
            [(has_id, kind, name, arguments)] = rest.tool_calls.values()
            assert has_id and kind == "function" and name == "lookup"
            assert json.loads(arguments) == {"word": "test", "limit": 1}
            assert rest.finish_reason == "tool_calls"
        assert rest.finish_reason and rest.finish_reason == rpc.finish_reason
        assert rest.usage and rest.usage == rpc.usage
        assert rest.error_type is None and rpc.error_type is None
        return

    assert rest.counted == str(s.error.http_status)
    # The same error class, rendered once per protocol.
    assert rest.error_type == rpc.error_type == s.error.openai_type
    assert rpc.status == s.error.grpc_code
    assert rest.status == (200 if s.mid_stream else s.error.http_status)
    assert rest.finish_reason is None and rpc.finish_reason is None
    assert rpc.usage is None
    assert rest.text == rpc.text
    # Everything the engine sent before the failure is kept (the double fails after 3 tokens).
    assert rest.text == ("Echo: hello there" if s.mid_stream else "")


def homeostat_of(message: pb.HomeostatState) -> dict[str, Any]:
    """The gRPC homeostat state in the REST probe's JSON shape (unset optionals: None)."""
    def opt(msg: Any, name: str) -> float | None:
        return getattr(msg, name) if msg.HasField(name) else None

    load, points = message.load, message.set_points
    return {
        "target_rate": opt(message, "target_rate"), "threshold": message.threshold,
        "base_threshold": message.base_threshold,
        "realised_rate": opt(message, "realised_rate"), "window": message.window,
        "shed_level": message.shed_level,
        "load": {"in_flight": load.in_flight, "limit": load.limit, "queue": opt(load, "queue"),
                 "ttft_p90_s": opt(load, "ttft_p90_s"), "pressure": load.pressure},
        "set_points": {"queue": points.queue, "ttft_s": points.ttft_s,
                       "restore": points.restore, "shedding": points.shedding},
    }


@pytest.mark.parametrize("decision", [
    {"strategy": "entropy", "homeostat": None},
    {"strategy": "entropy", "homeostat": {"target_rate": 0.25, "queue_set_point": 4.0}},
    {"strategy": "rules", "homeostat": {"in_flight_limit": 1}},
], ids=["entropy", "entropy-target-rate", "rules-shedding"])
async def test_probe_reports_the_same_decision_and_homeostat_over_rest_and_grpc(
    decision: dict[str, Any], start_gateway: GatewayFactory,
) -> None:
    from lkn.config import HomeostatSettings

    homeostat = HomeostatSettings(**(decision.get("homeostat") or {}))
    settings = {"strategy": decision["strategy"], "homeostat": homeostat}
    body = {"messages": [{"role": "user", "content": "Solve 3x + 7 = 22"}], "max_tokens": 8}
    async with SGLangDouble() as double:
        gw = await start_gateway(make_settings(double.url, decision=settings))
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.v1 + "/lkn/probe", json=body) as r:
                assert r.status == 200
                rest = await r.json()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            request = pb.ProbeRequest(request_id="p1")
            request.chat.messages.extend(pb.ChatMessage(**m) for m in body["messages"])
            request.sampling.max_tokens = 8
            reply = await gateway_pb2_grpc.GatewayStub(channel).Probe(request)
    got = homeostat_of(reply.homeostat)
    # One more decision by the time gRPC asked; the queue is read again meanwhile.
    for state in (rest["homeostat"], got):
        state.pop("window")
        state["load"].pop("queue")
    assert got == rest["homeostat"]
    assert got["target_rate"] == homeostat.target_rate
    d = reply.decision
    assert (pb.Mode.Name(d.mode).removeprefix("MODE_"), d.strategy, d.intervention,
            d.shed or None) == (rest["mode"], rest["strategy"], rest["intervention"],
                                rest["shed"])
    if homeostat.in_flight_limit == 1:  # the probe itself is in flight: at the limit
        assert got["shed_level"] == "fluido" and d.shed == "fluido"
        assert got["load"]["in_flight"] == 1 and got["load"]["limit"] == 1
