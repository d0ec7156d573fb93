"""gRPC input that does not decode, or is out of range, is INVALID_ARGUMENT, never UNKNOWN;
the key is checked first."""

from __future__ import annotations

import math
from collections.abc import Callable

import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.rpc.conftest import RpcClient, chat

pytestmark = pytest.mark.fast

UNDECODABLE = [
    b"\xff\xff\xff\xff",                      # a field number 0 / truncated varint
    b"\x22\x05\xff\xfe\xfd\xfc\xfb",          # prompt (field 4) with invalid UTF-8
    b"\x0a\xff\x01",                          # a length beyond the message
    b"\x1a\x03\x0a\x01",                      # chat cut in the middle of a message
    b"\x25\x00\x00",                          # field 4 with a 32-bit wire type, truncated
]


async def call_raw(channel: grpc.aio.Channel, method: str, data: bytes,
                   metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    path = f"/lkn.v1.Gateway/{method}"
    try:
        if method == "Generate":
            call = channel.unary_stream(path)(data, metadata=metadata, timeout=10)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(path)(data, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("data", UNDECODABLE, ids=[d.hex() for d in UNDECODABLE])
@pytest.mark.parametrize("method", ["Generate", "Probe", "ListModels"])
async def test_undecodable_messages_are_invalid_argument(
    rpc: RpcClient, method: str, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    code = await call_raw(rpc.channel, method, data)
    if method == "ListModels" and code is grpc.StatusCode.OK:
        return  # an empty message type: unknown fields are skipped, and these may parse
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in caplog.text


async def test_the_key_is_checked_before_the_message_is_looked_at(
    double: SGLangDouble, start_gateway: GatewayFactory,
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    gw = await start_gateway(make_settings(double.url, api_key="k"))
    channel = connect(gw).channel
    assert await call_raw(channel, "Probe", UNDECODABLE[0]) is grpc.StatusCode.UNAUTHENTICATED
    keyed = (("authorization", "Bearer k"),)
    assert (await call_raw(channel, "Probe", UNDECODABLE[0], keyed)
            is grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("sampling", [
    {"min_p": 1.5}, {"min_p": -0.5}, {"top_k": -2}, {"top_k": 0}, {"repetition_penalty": 0.0},
    {"repetition_penalty": -1.0}, {"temperature": math.nan}, {"temperature": math.inf},
    {"top_p": math.nan}, {"presence_penalty": -math.inf}, {"min_p": math.nan},
])
async def test_documented_ranges_are_enforced_on_grpc_too(
    rpc: RpcClient, double: SGLangDouble, sampling: dict[str, float]
) -> None:
    before = len(double.received)
    for call in (rpc.stub.Probe(pb.ProbeRequest(chat=chat().chat,
                                                sampling=pb.SamplingParams(**sampling))),):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in rpc.stub.Generate(chat(**sampling)):
            pass
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert len(double.received) == before  # nothing reached the engine
