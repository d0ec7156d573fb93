"""The request lifecycle through REST against the SGLang double: model-aware routing, streams
cut short, aborts of abandoned engine streams, shutdown, recovery while another engine serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lkn.breaker import BreakerState
from lkn.server import running
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.test_rest_gateway import CHAT, sse_events
from tests.clock import FakeClock
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

STREAM = {**CHAT, "max_tokens": 12, "stream": True}




@pytest.fixture
async def two_models() -> AsyncIterator[tuple[SGLangDouble, SGLangDouble]]:
    async with SGLangDouble(model="model-a") as a, SGLangDouble(model="model-b") as b:
        yield a, b


def served_by(double: SGLangDouble) -> int:
    return len(double.requests_to("/v1/chat/completions"))


async def test_a_pool_of_two_models_routes_every_request_to_the_engine_of_its_model(
    two_models: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = two_models
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    for i in range(6):
        body = {**CHAT, "model": "model-b" if i % 3 else "model-b+analitico", "stream": i % 2 == 0}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["X-LKN-Engine"] == "engine-2"  # named by its place, not its address
            await r.read()
    assert (served_by(a), served_by(b)) == (0, 6)
    assert all(req.body["model"] == "model-b" for req in b.requests_to("/v1/chat/completions"))
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "model": "model-a"}) as r:
        assert r.status == 200 and served_by(a) == 1
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "model": "gpt-4"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "model_not_found"
    async with http.get(gw.v1 + "/models") as r:
        ids = {card["id"] for card in (await r.json())["data"]}
    assert {"model-a", "model-b", "model-b+fluido"} <= ids


async def test_a_stream_ending_without_a_finish_reason_gets_an_error_event(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    double.script(Fault.DONE_EARLY)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        assert r.status == 200
        events = await sse_events(r)
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["type"] == "engine_error" and "finish reason" in error["message"]
    assert not any(choice.get("finish_reason") for e in events[:-2]
                   for choice in e.get("choices", []))


async def test_a_malformed_engine_stream_is_aborted_on_the_engine(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    double.script(Fault.MALFORMED)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        rid = r.headers["X-Request-Id"]
        events = await sse_events(r)
    assert events[-1] == "[DONE]" and "malformed" in events[-2]["error"]["message"]
    await wait_for(lambda: rid in double.aborts)
    await wait_for(lambda: not double.live_rids)


async def test_streams_open_at_the_end_of_the_grace_get_an_error_event_and_done(
    http: aiohttp.ClientSession,
) -> None:
    async with SGLangDouble(token_delay=0.1) as double:
        settings = make_settings(double.url, grpc_enabled=False, shutdown_grace=0.5)
        received: list[Any] = []

        async def client(url: str) -> None:
            async with http.post(url + "/v1/chat/completions",
                                 json={**STREAM, "max_tokens": 100}) as r:
                assert r.status == 200
                received.extend(await sse_events(r))

        async with running(settings) as run:
            task = asyncio.ensure_future(client(f"http://127.0.0.1:{run.rest_port}"))
            await wait_for(lambda: len(run.gateway.core.streams) > 0)
        await asyncio.wait_for(task, 10)
        assert received[-1] == "[DONE]"
        error = received[-2]["error"]
        assert error["code"] == "shutting_down"
        assert 1 < len(received) - 2 < 100, "it streamed until the grace period was over"
        await wait_for(lambda: not double.live_rids)


async def test_an_engine_that_tripped_once_serves_again_within_reset_plus_one_check(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble() as a, SGLangDouble() as b:
        reset, interval = 30.0, 0.2
        clock = FakeClock()
        gw = await start_gateway(make_settings(
            a.url, b.url, grpc_enabled=False, breaker_failures=2, breaker_reset=reset,
            health_interval=interval,
        ), clock)  # fmt: skip
        a.script(Fault.HTTP_500, Fault.HTTP_500)
        breaker = gw.gateway.pool.engines[0].breaker
        while breaker.state is not BreakerState.OPEN:
            async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
                assert r.status == 200  # retried on b
        before = served_by(a)
        clock.advance(reset + 0.001)  # the reset is due: the next check or request is a's trial
        opened = asyncio.get_running_loop().time()
        # b stays healthy and keeps taking traffic; a must come back anyway.
        while served_by(a) == before:
            async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
                assert r.status == 200
            elapsed = asyncio.get_running_loop().time() - opened
            assert elapsed < interval + 5.0, "the recovered engine never came back"
        assert breaker.state is BreakerState.CLOSED


async def test_engine_overload_is_retried_on_another_engine_and_spares_both_breakers(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble() as a, SGLangDouble() as b:
        gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False,
                                               breaker_failures=2))
        a.refuse_with = 503
        for stream in (False, True) * 5:
            async with http.post(gw.v1 + "/chat/completions",
                                 json={**CHAT, "stream": stream}) as r:
                assert r.status == 200
                await r.read()
        assert served_by(b) == 10
        b.refuse_with = 503
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 503
            assert (await r.json())["error"]["type"] == "engine_unavailable"
        for engine in gw.gateway.pool.engines:
            assert engine.breaker.state is BreakerState.CLOSED
            assert engine.breaker.consecutive_failures == 0
