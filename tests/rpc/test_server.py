"""The gRPC server beside REST: health follows readiness, reflection, ports, graceful stop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn.rpc import chat_request, stream_generate
from lkn.server import running
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.rpc.conftest import RpcClient, chat
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = {"lkn.v1.Gateway", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


async def read_rest(call: grpc.aio.UnaryStreamCall) -> list[pb.GenerateResponse]:
    """The remaining messages of a call already read with ``read()``."""
    out = []
    while (message := await call.read()) is not grpc.aio.EOF:
        out.append(message)
    return out


async def health_of(client: RpcClient, service: str) -> int:
    reply = await client.health.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def test_health_follows_pool_readiness(
    rgw: GatewayUnderTest, rpc: RpcClient, double: SGLangDouble
) -> None:
    for service in ("", "lkn.v1.Gateway"):
        assert await health_of(rpc, service) == SERVING
    double.ready = False
    statuses: list[int] = []

    async def poll() -> None:
        while True:
            statuses.append(await health_of(rpc, "lkn.v1.Gateway"))
            if statuses[-1] == NOT_SERVING:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), 5.0)
    assert await health_of(rpc, "") == NOT_SERVING
    double.ready = True
    await wait_for(lambda: rgw.gateway.ready())
    await asyncio.wait_for(_until(rpc, SERVING), 5.0)


async def _until(client: RpcClient, status: int) -> None:
    while await health_of(client, "") != status:
        await asyncio.sleep(0.05)


async def test_health_of_an_unknown_service_is_not_found(rpc: RpcClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health_of(rpc, "no.such.Service")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def _reflect(
    channel: grpc.aio.Channel, method: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([request]))
    replies = [reply async for reply in call]
    assert len(replies) == 1
    reply: reflection_pb2.ServerReflectionResponse = replies[0]
    return reply


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_reflection_lists_and_describes_the_services(rpc: RpcClient, version: str) -> None:
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    listed = await _reflect(
        rpc.channel, method, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in listed.list_services_response.service}
    assert names == SERVICES
    described = await _reflect(
        rpc.channel, method,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="lkn.v1.Gateway"),
    )  # fmt: skip
    [raw] = described.file_descriptor_response.file_descriptor_proto
    assert raw == pb.DESCRIPTOR.serialized_pb


async def test_generated_stub_reflection_matches_the_stream_helper(rpc: RpcClient) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(rpc.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_by_filename="lkn/v1/gateway.proto")])
    )
    [reply] = [r async for r in call]
    assert reply.file_descriptor_response.file_descriptor_proto[0] == pb.DESCRIPTOR.serialized_pb


async def test_grpc_disabled_runs_rest_only(
    double: SGLangDouble, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    assert gw.grpc_port is None


async def test_a_busy_grpc_port_fails_the_start_and_frees_rest(double: SGLangDouble) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=str(port)):
            async with running(make_settings(double.url, grpc_port=port)):
                pass


async def test_rest_and_grpc_share_one_gateway(
    rgw: GatewayUnderTest, rpc: RpcClient, double: SGLangDouble
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            rgw.v1 + "/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        ) as r:
            assert r.status == 200
    result = await stream_generate(rpc.channel, chat_request("hi", max_tokens=3))
    assert result.finish is not None
    text = rgw.gateway.metrics.render().decode()
    assert 'frontend="grpc"' in text and 'frontend="rest"' in text


async def test_graceful_stop_lets_streams_in_flight_finish(
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    async with SGLangDouble(token_delay=0.03) as double:
        settings = make_settings(double.url, shutdown_grace=5.0)
        stack = running(settings)
        run = await stack.__aenter__()
        gw = GatewayUnderTest(run.gateway, settings, f"http://127.0.0.1:{run.rest_port}",
                              run.grpc_port)  # fmt: skip
        client = connect(gw)
        call = client.stub.Generate(chat(max_tokens=20))
        first = await call.read()
        assert first.WhichOneof("event") == "start"
        stopping = asyncio.create_task(stack.__aexit__(None, None, None))
        await asyncio.sleep(0.1)
        # New calls are refused while the old one drains.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.stub.ListModels(pb.ListModelsRequest(), timeout=1.0)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        rest = await read_rest(call)
        assert rest[-1].WhichOneof("event") == "finish"
        assert rest[-1].finish.usage.completion_tokens == 20
        assert await call.code() is grpc.StatusCode.OK
        await asyncio.wait_for(stopping, 10.0)


async def test_stop_cancels_streams_still_running_after_the_grace_period(
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        settings = make_settings(double.url, shutdown_grace=0.3)
        stack = running(settings)
        run = await stack.__aenter__()
        gw = GatewayUnderTest(run.gateway, settings, "", run.grpc_port)
        call = connect(gw).stub.Generate(chat(max_tokens=200))
        start = await call.read()
        rid = start.start.gateway_request_id
        await asyncio.wait_for(stack.__aexit__(None, None, None), 5.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await read_rest(call)
        await wait_for(lambda: rid in double.aborts or rid in double.cancelled_rids)
