"""A finished answer is never failed or resumed: once the engine has sent the finish chunk,
the end of the connection before ``[DONE]`` (a proxy or an engine restarting at the wrong
moment) is harmless, for a stream, a non-streamed answer and gRPC alike."""

from __future__ import annotations

from typing import Any

import asyncio

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc as pb_grpc
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.test_rest_gateway import content_of, sse_events
from tests.test_resume import STREAM, chat_requests, metric, pair, resuming_gateway

pytestmark = pytest.mark.fast
__all__ = ["pair"]  # the fixture


def finishes(events: list[Any]) -> list[str]:
    return [c["finish_reason"] for e in events if isinstance(e, dict)
            for c in e.get("choices") or () if c.get("finish_reason")]


@pytest.mark.parametrize("resume", [True, False])
async def test_a_stream_whose_finish_came_ends_cleanly_when_the_connection_drops(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession, resume: bool,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway, resume=resume)
    a.script(Fault.DROP_AFTER_FINISH)
    body = {**STREAM, "stream_options": {"include_usage": True}}
    async with http.post(gw.v1 + "/chat/completions", json=body) as r:
        assert r.status == 200
        events = await sse_events(r)
    assert events[-1] == "[DONE]"
    assert not any("error" in e for e in events if isinstance(e, dict))
    assert content_of(events) == "one two three four five six"
    assert finishes(events) == ["stop"]  # one finish, not a second one from a resume
    usages = [e["usage"] for e in events  # the usage chunk (content chunks carry a running one)
              if isinstance(e, dict) and e.get("usage") and not e.get("choices")]
    assert len(usages) == 1 and usages[0]["completion_tokens"] == 6
    assert chat_requests(b) == []  # nothing was continued elsewhere
    assert await metric(gw, http, "lkn_engine_failures_total") == 0
    assert await metric(gw, http, "lkn_stream_resumes_total") == 0
    assert await metric(gw, http, 'lkn_requests_total{frontend="rest",outcome="200"') == 1


async def test_a_non_streamed_answer_whose_finish_came_is_answered_once(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway)
    a.script(Fault.DROP_AFTER_FINISH)  # read as a stream under the loop guard
    async with http.post(gw.v1 + "/chat/completions", json={**STREAM, "stream": False}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["choices"][0]["message"]["content"] == "one two three four five six"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert chat_requests(b) == []
    assert await metric(gw, http, "lkn_engine_failures_total") == 0


async def test_grpc_a_stream_whose_finish_came_ends_ok(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway, grpc_enabled=True)
    a.script(Fault.DROP_AFTER_FINISH)
    chat = pb.Chat(messages=[pb.ChatMessage(role="user", content="Count for me")])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stub = pb_grpc.GatewayStub(channel)
        call = stub.Generate(pb.GenerateRequest(
            model="smollm2", chat=chat, sampling=pb.SamplingParams(max_tokens=10)))
        events = [e async for e in call]
        assert await call.code() == grpc.StatusCode.OK
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert text == "one two three four five six"
    assert events[-1].WhichOneof("event") == "finish"
    assert events[-1].finish.finish_reason == "stop"
    assert [e.WhichOneof("event") for e in events].count("finish") == 1
    assert chat_requests(b) == []
    assert await metric(gw, http, "lkn_engine_failures_total") == 0


async def test_shutdown_while_a_stream_is_resumed_ends_it_with_an_error_event_and_done(
    http: aiohttp.ClientSession,
) -> None:
    """The continuation's engine is slow to answer when the grace period ends: the client
    still gets the shutdown error and [DONE], and the continuation is aborted at once."""
    from lkn.config import PlacementSettings
    from lkn.server import running
    from tests.waiting import wait_for
    from tests.test_resume import MESSAGES

    async with SGLangDouble(reply="one two three four five six") as a, \
            SGLangDouble(reply="four five six", prefill_delay=30.0) as b:
        settings = make_settings(a.url, b.url, resume=True, grpc_enabled=False,
                                 shutdown_grace=0.5,
                                 placement=PlacementSettings(policy="cache_aware"))
        a.script(Fault.DROP_MID_STREAM)
        received: list[Any] = []

        async def client(url: str) -> None:
            async with http.post(url + "/v1/chat/completions", json=STREAM) as r:
                assert r.status == 200
                received.extend(await sse_events(r))

        async with running(settings) as run:
            pool = run.gateway.pool
            first = next(e for e in pool.engines if e.client.url == a.url)
            pool.placement.record(first.name, pool.placement.prefix({"messages": MESSAGES}))
            task = asyncio.ensure_future(client(f"http://127.0.0.1:{run.rest_port}"))
            await wait_for(lambda: chat_requests(b))  # the continuation is on its way
        await asyncio.wait_for(task, 10)
        assert received[-1] == "[DONE]"
        assert received[-2]["error"]["code"] == "shutting_down"
        assert content_of(received) == "one two three"
        await wait_for(lambda: not b.live_rids)


@pytest.mark.parametrize("keepalive", [0.05, 0.0])
async def test_shutdown_during_a_vote_ends_the_stream_cleanly_and_aborts_the_vote(
    keepalive: float, http: aiohttp.ClientSession,
) -> None:
    """The vote's K answers are slow when the grace period ends: a client whose stream was
    already open (keep-alives during the vote) gets the shutdown error event and [DONE]; one
    that had nothing yet gets a 503; either way the engine request is aborted at once."""
    from lkn.server import running
    from tests.conftest import CARE_OPEN
    from tests.waiting import wait_for

    async with SGLangDouble(prefill_delay=30.0) as double:
        settings = make_settings(double.url, grpc_enabled=False, shutdown_grace=0.5,
                                 sse_keepalive=keepalive, client=CARE_OPEN)
        received: list[Any] = []
        statuses: list[int] = []

        async def client(url: str) -> None:
            async with http.post(url + "/v1/chat/completions", json=STREAM,
                                 headers={"X-LKN-Intervention": "consistency:3"}) as r:
                statuses.append(r.status)
                if r.status == 200:
                    received.extend(await sse_events(r))
                else:
                    received.append(await r.json())

        async with running(settings) as run:
            task = asyncio.ensure_future(client(f"http://127.0.0.1:{run.rest_port}"))
            await wait_for(lambda: double.live_rids)  # the vote is under way
            if keepalive:
                await wait_for(lambda: statuses)  # the stream is open (its keep-alives)
        await asyncio.wait_for(task, 10)
        if keepalive:
            assert statuses == [200]
            assert received[-1] == "[DONE]"
            assert received[-2]["error"]["code"] == "shutting_down"
        else:
            assert statuses == [503] and received[0]["error"]["code"] == "shutting_down"
        await wait_for(lambda: not double.live_rids)
        assert double.aborts or double.cancelled_rids
