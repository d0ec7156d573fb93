"""gRPC clients for gateways under test: channels on the gateway's port-0 gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.waiting import wait_for


@dataclass
class RpcClient:
    channel: grpc.aio.Channel
    stub: gateway_pb2_grpc.GatewayStub
    health: health_pb2_grpc.HealthStub




@pytest.fixture
async def connect() -> AsyncIterator[Callable[[GatewayUnderTest], RpcClient]]:
    """``connect(gw)`` -> a client on ``gw``'s gRPC port; channels close after the test."""
    channels: list[grpc.aio.Channel] = []

    def open_client(gw: GatewayUnderTest) -> RpcClient:
        assert gw.grpc_port, "the gateway under test has no gRPC server"
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}")
        channels.append(channel)
        return RpcClient(
            channel, gateway_pb2_grpc.GatewayStub(channel), health_pb2_grpc.HealthStub(channel)
        )

    yield open_client
    for channel in channels:
        await channel.close(None)


@pytest.fixture
async def rgw(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    """A gateway with REST and gRPC in front of one test double."""
    return await start_gateway(make_settings(double.url))


@pytest.fixture
def rpc(rgw: GatewayUnderTest, connect: Callable[[GatewayUnderTest], RpcClient]) -> RpcClient:
    return connect(rgw)


def chat(text: str = "hello there", **sampling: object) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=text)]),
        sampling=pb.SamplingParams(**sampling),  # type: ignore[arg-type]
    )
