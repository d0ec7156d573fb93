"""lkn.v1.Gateway in process: every RPC and every status code, against the SGLang test double."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn.breaker import BreakerState
from lkn.config import Settings
from lkn.errors import EngineError, NoEngineAvailable, TooManyRequests
from lkn.rpc import chat_request, stream_generate
from lkn.values import GenerateRequest
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.rpc.conftest import RpcClient, chat
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

Connector = Callable[[GatewayUnderTest], RpcClient]


async def collect(call: Any) -> list[pb.GenerateResponse]:
    return [message async for message in call]


def metadata_of(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: value for key, value in error.trailing_metadata() or ()}


# ---- Generate -------------------------------------------------------------------------


async def test_generate_streams_start_then_deltas_then_finish(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    request = chat("hello there", max_tokens=6)
    request.request_id = "client-42"
    messages = await collect(rpc.stub.Generate(request))
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert set(kinds[1:-1]) == {"delta"}
    start, finish = messages[0].start, messages[-1].finish
    assert start.request_id == "client-42"
    assert start.decision.mode == pb.MODE_FLUIDO and start.decision.strategy == "rules"
    assert start.engine == "engine-1"  # its place in LKN_ENGINE_URLS, not its address
    text = "".join(m.delta.text for m in messages[1:-1])
    assert text == "Echo: hello there w3 w4 w5"
    assert finish.finish_reason == "length"
    assert (finish.usage.completion_tokens, finish.usage.total_tokens) == (
        6, finish.usage.prompt_tokens + 6,
    )  # fmt: skip
    sent = double.requests_to("/v1/chat/completions")[-1].body
    # The gateway's own id goes to the engine, never the client's.
    assert sent["rid"] == start.gateway_request_id != "client-42"
    assert sent["stream"] is True and sent["max_tokens"] == 6


async def test_generate_with_a_prompt_uses_the_completions_route(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    request = pb.GenerateRequest(
        prompt="once upon a time", sampling=pb.SamplingParams(max_tokens=4)
    )
    messages = await collect(rpc.stub.Generate(request))
    assert "".join(m.delta.text for m in messages) == "Echo: once upon a"
    assert messages[-1].finish.finish_reason == "length"
    assert double.requests_to("/v1/completions")[-1].body["prompt"] == "once upon a time"


async def test_unset_sampling_fields_are_not_sent_and_zero_is_not_unset(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    await collect(rpc.stub.Generate(chat()))
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert not {"temperature", "top_p", "seed", "stop"} & set(sent)
    # No budget from the client: the gateway's default answer budget (LKN_DEFAULT_MAX_TOKENS).
    assert sent["max_tokens"] == Settings().default_max_tokens
    await collect(rpc.stub.Generate(chat(temperature=0.0, seed=0, stop=["w9"], top_k=5)))
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert (sent["temperature"], sent["seed"], sent["stop"], sent["top_k"]) == (0.0, 0, ["w9"], 5)


async def test_mode_override_forces_analitico(rpc: RpcClient, double: SGLangDouble) -> None:
    request = chat("hi", max_tokens=3)
    request.mode = pb.MODE_ANALITICO
    messages = await collect(rpc.stub.Generate(request))
    decision = messages[0].start.decision
    assert decision.mode == pb.MODE_ANALITICO and decision.strategy == "override"
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert len(sent["messages"]) > 1, "the ANALITICO instruction was not added"


async def test_client_deadline_bounds_the_engine_request(
    rgw: GatewayUnderTest, rpc: RpcClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float | None] = []
    original = rgw.gateway.stream

    def spy(request: GenerateRequest, frontend: str = "rest") -> Any:
        seen.append(request.timeout)
        return original(request, frontend)

    monkeypatch.setattr(rgw.gateway, "stream", spy)
    await collect(rpc.stub.Generate(chat(max_tokens=2), timeout=5.0))
    await collect(rpc.stub.Generate(chat(max_tokens=2)))
    assert seen[0] is not None and 4.0 < seen[0] <= 5.1
    assert seen[1] is None


# ---- Probe and ListModels -------------------------------------------------------------


async def test_probe_returns_the_decision_without_generating(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    reply = await rpc.stub.Probe(pb.ProbeRequest(request_id="p1", prompt="hello there"))
    assert reply.request_id == "p1" and len(reply.gateway_request_id) == 32
    assert reply.decision.mode == pb.MODE_FLUIDO and reply.decision.strategy == "rules"
    assert reply.decision.applied and not reply.decision.HasField("score")
    assert not double.requests_to("/v1/chat/completions") + double.requests_to("/v1/completions")


async def test_probe_with_entropy_reports_what_the_probe_saw(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    confident = [(" yes", -0.01), (" no", -5.0), (" maybe", -6.0)]
    async with SGLangDouble(top_logprobs=confident) as double:
        gw = await start_gateway(
            make_settings(double.url, decision={"strategy": "entropy", "probe_top_k": 3})
        )
        reply = await connect(gw).stub.Probe(pb.ProbeRequest(prompt="is it?"))
    d = reply.decision
    assert d.strategy == "entropy" and d.mode == pb.MODE_FLUIDO
    assert d.HasField("score") and d.HasField("threshold") and d.score < d.threshold
    assert d.HasField("probe_latency_ms") and d.probe_latency_ms >= 0
    assert len(d.entropies) == 1 and len(d.top_tokens) == 1
    assert [(t.token, t.logprob) for t in d.top_tokens[0].tokens] == confident
    assert d.fallback == ""


async def test_probe_that_fails_reports_the_fallback(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble() as double:
        gw = await start_gateway(make_settings(double.url, decision={"strategy": "entropy"}))
        double.script(Fault.HTTP_500)
        reply = await connect(gw).stub.Probe(pb.ProbeRequest(prompt="hello"))
    d = reply.decision
    assert d.strategy == "entropy" and d.fallback != ""
    assert not d.HasField("score") and not d.top_tokens


async def test_list_models_lists_the_engine_model_and_its_variants(rpc: RpcClient) -> None:
    reply = await rpc.stub.ListModels(pb.ListModelsRequest())
    assert [m.id for m in reply.models] == ["smollm2", "smollm2+fluido", "smollm2+analitico"]
    assert {m.root for m in reply.models} == {"smollm2"}
    assert reply.models[0].max_model_len == 8192


# ---- status codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (pb.GenerateRequest(), "input"),
        (chat(temperature=5.0), "temperature"),
        (chat(max_tokens=0), "max_tokens"),
        (pb.GenerateRequest(chat=pb.Chat(messages=[])), "messages"),
        (pb.GenerateRequest(chat=pb.Chat(messages=[pb.ChatMessage(role="x")])), "role"),
        (pb.GenerateRequest(prompt="x", mode=7), "mode"),  # type: ignore[arg-type]
    ],
    ids=["no-input", "temperature", "max-tokens-zero", "no-messages", "bad-role", "bad-mode"],
)
async def test_bad_input_is_invalid_argument_and_never_reaches_the_engine(
    rpc: RpcClient, double: SGLangDouble, request_: pb.GenerateRequest, param: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(rpc.stub.Generate(request_))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert param in info.value.details()
    assert metadata_of(info.value)["lkn-error-type"] == "invalid_request_error"
    assert not double.requests_to("/v1/chat/completions")


async def test_probe_bad_input_is_invalid_argument(rpc: RpcClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.stub.Probe(pb.ProbeRequest(chat=pb.Chat()))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_api_key_is_required_when_configured(
    double: SGLangDouble, start_gateway: GatewayFactory, connect: Connector
) -> None:
    gw = await start_gateway(make_settings(double.url, api_key="s3cret"))
    client = connect(gw)
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED, metadata
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client.stub.Generate(chat(), metadata=metadata))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED, metadata
    assert not double.requests_to("/v1/chat/completions")
    good = (("authorization", "Bearer s3cret"),)
    assert (await client.stub.ListModels(pb.ListModelsRequest(), metadata=good)).models
    lower = (("authorization", "bearer s3cret"),)
    assert (await client.stub.ListModels(pb.ListModelsRequest(), metadata=lower)).models
    result = await stream_generate(client.channel, chat_request("hi", max_tokens=2), metadata=good)
    assert result.finish is not None and result.text
    # Health stays public, like REST's /health.
    check = await client.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert check.status == health_pb2.HealthCheckResponse.SERVING


async def test_open_breaker_is_unavailable_with_the_retry_delay(
    double: SGLangDouble, start_gateway: GatewayFactory, connect: Connector
) -> None:
    gw = await start_gateway(make_settings(double.url, breaker_failures=1, breaker_reset=30.0,
                                           health_interval=30.0))
    client = connect(gw)
    double.script(Fault.HTTP_500)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client.stub.Generate(chat()))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert metadata_of(info.value)["lkn-error-type"] == EngineError.openai_type
    assert gw.gateway.pool.engines[0].breaker.state is BreakerState.OPEN
    calls = len(double.requests_to("/v1/chat/completions"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(client.stub.Generate(chat()))
    error = info.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    metadata = metadata_of(error)
    assert metadata["lkn-error-type"] == NoEngineAvailable.openai_type
    retry_ms = int(metadata["retry-after-ms"])
    assert 1000 <= retry_ms <= 30000
    assert f"retry after {retry_ms} ms" in error.details()
    assert len(double.requests_to("/v1/chat/completions")) == calls, "the engine was called"


async def test_over_the_concurrency_limit_is_resource_exhausted(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        gw = await start_gateway(make_settings(double.url, max_concurrency=1))
        client = connect(gw)
        busy = client.stub.Generate(chat(max_tokens=40))
        await busy.read()  # the start message: the first call holds the only slot
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client.stub.Generate(chat()))
        busy.cancel()
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert metadata_of(info.value)["retry-after-ms"] == "1000"
    assert metadata_of(info.value)["lkn-error-type"] == TooManyRequests.openai_type


async def test_client_deadline_is_deadline_exceeded_and_aborts_the_engine_request(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble(token_delay=0.1) as double:
        gw = await start_gateway(make_settings(double.url))
        client = connect(gw)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client.stub.Generate(chat(max_tokens=50), timeout=0.5))
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        [sent] = double.requests_to("/v1/chat/completions")
        rid = sent.body["rid"]
        await wait_for(lambda: rid in double.aborts or rid in double.cancelled_rids)
        await wait_for(lambda: not double.live_rids and gw.gateway.active == 0)


async def test_client_cancel_aborts_the_engine_request(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        gw = await start_gateway(make_settings(double.url))
        call = connect(gw).stub.Generate(chat(max_tokens=100))
        start = await call.read()
        await call.read()  # one delta: the engine is generating
        rid = start.start.gateway_request_id
        assert rid in double.live_rids
        call.cancel()
        await wait_for(lambda: rid in double.aborts or rid in double.cancelled_rids)
        await wait_for(lambda: not double.live_rids and gw.gateway.active == 0)
        assert len(double.requests_to("/v1/chat/completions")) == 1


async def test_engine_failure_before_the_first_message_is_unavailable(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    double.script(Fault.HTTP_503)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(rpc.stub.Generate(chat()))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert metadata_of(info.value)["lkn-error-type"] == "engine_unavailable"


@pytest.mark.parametrize("fault", [Fault.DROP_MID_STREAM, Fault.ABORT_503])
async def test_mid_stream_engine_failure_ends_the_stream_unavailable_not_ok(
    rpc: RpcClient, double: SGLangDouble, fault: Fault
) -> None:
    double.script(fault)
    call = rpc.stub.Generate(chat(max_tokens=10))
    received: list[pb.GenerateResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for message in call:
            received.append(message)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    kinds = [m.WhichOneof("event") for m in received]
    assert kinds[0] == "start" and "finish" not in kinds
    # A dropped connection can take the last buffered tokens with it; an error event cannot.
    assert "delta" in kinds or fault is Fault.DROP_MID_STREAM


async def test_stalled_engine_is_deadline_exceeded(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble() as double:
        gw = await start_gateway(make_settings(double.url, read_timeout=0.3))
        double.script(Fault.STALL)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(connect(gw).stub.Generate(chat()))
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_bug_is_internal_and_logged_once(
    rgw: GatewayUnderTest, rpc: RpcClient, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    def broken() -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(rgw.gateway, "models", broken)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await rpc.stub.ListModels(pb.ListModelsRequest())
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert "boom" not in info.value.details()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


async def test_many_concurrent_streams_share_one_gateway(rpc: RpcClient) -> None:
    results = await asyncio.gather(
        *(stream_generate(rpc.channel, chat_request(f"n{i}", max_tokens=5)) for i in range(20))
    )
    assert [r.text for r in results] == [f"Echo: n{i} w2 w3 w4" for i in range(20)]
    assert all(r.finish is not None and r.finish.finish_reason == "length" for r in results)
