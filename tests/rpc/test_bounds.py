"""The gRPC server's bounds equal REST's: connections, calls at once, streams per connection,
connection age (which ends a health Watch), and reflection behind the key when one is set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from tests.rpc.conftest import RpcClient

pytestmark = pytest.mark.fast

SERVING = health_pb2.HealthCheckResponse.SERVING
REFLECT = "/grpc.reflection.{}.ServerReflection/ServerReflectionInfo"
KEY = (("authorization", "Bearer s3cret"),)


async def start_rpc(start_gateway: GatewayFactory, double: SGLangDouble,
                    **settings: Any) -> GatewayUnderTest:
    return await start_gateway(make_settings(double.url, **settings))


@pytest.fixture
async def own_connection() -> Any:
    """``own_connection(gw)`` -> a client with a connection of its own (channels in one
    process share their connections to one address otherwise)."""
    channels: list[grpc.aio.Channel] = []

    def open_client(gw: GatewayUnderTest) -> RpcClient:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}",
                                            options=[("grpc.use_local_subchannel_pool", 1)])
        channels.append(channel)
        return RpcClient(channel, gateway_pb2_grpc.GatewayStub(channel),
                         health_pb2_grpc.HealthStub(channel))

    yield open_client
    for channel in channels:
        await channel.close(None)


async def watching(client: RpcClient) -> Any:
    """A health Watch whose first message (SERVING) has arrived."""
    call = client.health.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await asyncio.wait_for(call.read(), 5)
    assert first.status == SERVING
    return call


async def list_services(channel: grpc.aio.Channel, version: str,
                        metadata: tuple[tuple[str, str], ...] | None = None) -> set[str]:
    call = channel.stream_stream(
        REFLECT.format(version),
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=metadata)
    replies = [reply async for reply in call]
    return {s.name for s in replies[0].list_services_response.service}


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_reflection_needs_the_key_when_one_is_set_and_health_does_not(
    double: SGLangDouble, start_gateway: GatewayFactory,
    connect: Callable[[GatewayUnderTest], RpcClient], version: str,
) -> None:
    gw = await start_rpc(start_gateway, double, api_key="s3cret")
    client = connect(gw)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await list_services(client.channel, version)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await list_services(client.channel, version, (("authorization", "Bearer wrong"),))
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "lkn.v1.Gateway" in await list_services(client.channel, version, KEY)
    # Health stays open: it says SERVING or NOT_SERVING and nothing else.
    reply = await client.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == SERVING
    # Without a key configured, reflection is open as before.
    open_gw = await start_rpc(start_gateway, double)
    assert "lkn.v1.Gateway" in await list_services(connect(open_gw).channel, version)


async def test_calls_at_once_are_bounded_by_the_connection_limit(
    double: SGLangDouble, start_gateway: GatewayFactory,
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    """Never-ending health Watches cannot pile up: the third of a limit of two is refused."""
    gw = await start_rpc(start_gateway, double, max_connections=2)
    client = connect(gw)
    held = [await watching(client), await watching(client)]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await watching(client)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    held[0].cancel()
    await asyncio.sleep(0.2)
    held.append(await watching(client))  # a freed place is taken again
    for call in held:
        call.cancel()


async def test_connections_are_bounded_like_rest(
    double: SGLangDouble, start_gateway: GatewayFactory,
    own_connection: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    gw = await start_rpc(start_gateway, double, max_connections=1)
    first = own_connection(gw)
    assert (await first.health.Check(health_pb2.HealthCheckRequest())).status == SERVING
    # The first connection is open (and idle): a second one is refused.
    second = own_connection(gw)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await second.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert (await first.health.Check(health_pb2.HealthCheckRequest())).status == SERVING


async def test_streams_on_one_connection_are_bounded(
    double: SGLangDouble, start_gateway: GatewayFactory,
    own_connection: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    gw = await start_rpc(start_gateway, double, grpc_max_streams=1)
    client = own_connection(gw)
    call = await watching(client)
    # The connection's one stream is taken: a second call on it waits for it ...
    check = asyncio.ensure_future(client.health.Check(health_pb2.HealthCheckRequest()))
    await asyncio.sleep(0.5)
    assert not check.done()
    # ... while another connection is served at once.
    other = own_connection(gw)
    assert (await other.health.Check(health_pb2.HealthCheckRequest(), timeout=2)).status == SERVING
    call.cancel()
    assert (await asyncio.wait_for(check, 5)).status == SERVING


async def test_a_health_watch_ends_with_its_connections_age(
    double: SGLangDouble, start_gateway: GatewayFactory,
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    """A Watch keeps its connection busy for ever, so the idle timeout never closes it; the
    connection age (plus its grace) does."""
    gw = await start_rpc(start_gateway, double, grpc_max_connection_age=1.0,
                         grpc_connection_age_grace=0.5, idle_timeout=60.0)
    client = connect(gw)
    started = time.monotonic()
    call = await watching(client)

    async def to_the_end() -> None:
        while await call.read() is not grpc.aio.EOF:
            pass

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await asyncio.wait_for(to_the_end(), 10)
        raise AssertionError("the Watch ended without an error")  # pragma: no cover
    took = time.monotonic() - started
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert 0.9 <= took < 6, took
    # New calls go on a new connection.
    assert (await client.health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == SERVING
