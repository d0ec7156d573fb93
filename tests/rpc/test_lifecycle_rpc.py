"""The request lifecycle through gRPC against the SGLang double: routing by model, streams cut
short, deadlines counted as deadlines, shutdown as UNAVAILABLE."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from lkn.server import running
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.rpc.conftest import RpcClient, chat
from tests.waiting import wait_for
from tests.rpc.test_servicer import Connector

pytestmark = pytest.mark.fast


async def collect(call: Any) -> list[pb.GenerateResponse]:
    return [message async for message in call]


def counted(gw: Any, outcome: str, route: str = "chat") -> float:
    value = gw.gateway.metrics.registry.get_sample_value(
        "lkn_requests_total", {"frontend": "grpc", "route": route, "outcome": outcome}
    )
    return value or 0.0


async def test_an_unknown_model_is_not_found(rpc: RpcClient) -> None:
    request = chat()
    request.model = "gpt-4"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(rpc.stub.Generate(request))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    probe = pb.ProbeRequest(model="gpt-4", prompt="hi")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.stub.Probe(probe)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_stream_ending_without_a_finish_reason_is_an_error_status(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    double.script(Fault.DONE_EARLY)
    messages: list[pb.GenerateResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for message in rpc.stub.Generate(chat(max_tokens=10)):
            messages.append(message)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "finish reason" in (info.value.details() or "")
    assert not any(m.HasField("finish") for m in messages)


async def test_a_grpc_deadline_is_counted_as_a_deadline_not_a_server_error(
    start_gateway: GatewayFactory, connect: Connector
) -> None:
    async with SGLangDouble(token_delay=0.1) as double:
        gw = await start_gateway(make_settings(double.url))
        client = connect(gw)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(client.stub.Generate(chat(max_tokens=50), timeout=0.4))
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await wait_for(lambda: counted(gw, "504") == 1)
        assert counted(gw, "500") == 0 and counted(gw, "499") == 0
        await wait_for(lambda: not double.live_rids)


async def test_grpc_streams_open_at_the_end_of_the_grace_end_unavailable() -> None:
    async with SGLangDouble(token_delay=0.1) as double:
        settings = make_settings(double.url, shutdown_grace=0.5)
        async with running(settings) as run:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{run.grpc_port}")
            stub = gateway_pb2_grpc.GatewayStub(channel)
            call = stub.Generate(chat(max_tokens=100))
            first = await call.read()
            assert isinstance(first, pb.GenerateResponse) and first.HasField("start")

            async def rest() -> None:
                while await call.read() is not grpc.aio.EOF:
                    pass

            task = asyncio.ensure_future(rest())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(task, 10)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (info.value.details() or "")
        await channel.close(None)
