"""The loop guard in both front-ends: gRPC ends a looping answer as REST does."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.rpc.conftest import RpcClient, chat
from tests.test_loop_guard import CHAT, LOOP, events_of, text_of

pytestmark = pytest.mark.fast


async def test_grpc_and_rest_end_a_loop_alike(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    connect: Callable[[GatewayUnderTest], RpcClient],
) -> None:
    async with SGLangDouble(reply=LOOP, token_delay=0.001) as engine:
        gw = await start_gateway(make_settings(engine.url))
        messages = [m async for m in connect(gw).stub.Generate(chat("count the apples"))]
        grpc_text = "".join(m.delta.text for m in messages if m.WhichOneof("event") == "delta")
        assert messages[-1].WhichOneof("event") == "finish"
        assert messages[-1].finish.finish_reason == "length"
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            events = await events_of(r)
        rest_text = text_of(events)
        # The guard sees the same text in both front-ends, so it stops both at the same place.
        assert grpc_text == rest_text and len(grpc_text) < len(LOOP) // 4
