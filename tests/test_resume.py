"""LKN_RESUME: a stream whose engine fails after the first byte goes on on another engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc as pb_grpc
from lkn.config import EngineSpec, PlacementSettings
from lkn.engines.client import HttpEngineClient
from lkn.exchange.continuation import continuation_body, delivered_tokens, resumable
from lkn.values import GenerateRequest, Route
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.test_rest_gateway import content_of, sse_events

pytestmark = pytest.mark.fast

MESSAGES = [{"role": "user", "content": "Count for me"}]
STREAM = {"model": "smollm2", "messages": MESSAGES, "max_tokens": 10, "stream": True}


def request(**body: Any) -> GenerateRequest:
    route = Route.COMPLETION if "prompt" in body else Route.CHAT
    return GenerateRequest(route, {"messages": MESSAGES, **body} if route is Route.CHAT else body,
                           "rid", stream=True)


# ---- what can be resumed, and how -------------------------------------------------------


def test_plain_streams_are_resumable_and_tools_n_and_grammars_are_not() -> None:
    assert resumable(request())
    assert resumable(request(prompt="Once upon"))
    assert resumable(request(response_format={"type": "text"}))
    assert not resumable(request(n=2))
    assert not resumable(request(tools=[{"type": "function", "function": {"name": "f"}}]))
    assert not resumable(request(response_format={"type": "json_object"}))
    assert not resumable(request(regex="[0-9]+"))
    assert not resumable(request(prompt=["a", "b"]))
    assert not resumable(request(prompt=[1, 2, 3]))
    assert not resumable(GenerateRequest(Route.CHAT, {"messages": MESSAGES}, "rid", stream=False))


def test_completions_with_echo_are_not_resumed() -> None:
    assert resumable(request(prompt="Once upon"))
    assert not resumable(request(prompt="Once upon", echo=True))


def test_chat_continues_the_delivered_text_as_a_final_assistant_message() -> None:
    body = {"messages": MESSAGES, "max_tokens": 10, "min_tokens": 4, "temperature": 0}
    cont = continuation_body(Route.CHAT, body, "One, two", 3)
    assert cont is not None
    assert cont["messages"] == [*MESSAGES, {"role": "assistant", "content": "One, two"}]
    assert cont["continue_final_message"] is True
    assert cont["max_tokens"] == 7 and cont["min_tokens"] == 1 and cont["temperature"] == 0
    assert body["messages"] == MESSAGES  # not mutated


def test_a_client_prefill_is_extended_not_repeated() -> None:
    messages = [*MESSAGES, {"role": "assistant", "content": "Sure:"}]
    cont = continuation_body(Route.CHAT, {"messages": messages, "continue_final_message": True},
                             " one", 1)
    assert cont is not None and cont["messages"][-1] == {"role": "assistant", "content": "Sure: one"}
    assert len(cont["messages"]) == 2


def test_completions_continue_from_prompt_plus_text_and_a_spent_budget_stops() -> None:
    cont = continuation_body(Route.COMPLETION, {"prompt": "Once", "max_tokens": 5}, " upon", 1)
    assert cont is not None and cont["prompt"] == "Once upon" and cont["max_tokens"] == 4
    cont = continuation_body(Route.COMPLETION, {"prompt": ["Once"]}, " upon", 1)
    assert cont is not None and cont["prompt"] == ["Once upon"]
    assert continuation_body(Route.CHAT, {"messages": MESSAGES, "max_tokens": 3}, "a b c", 3) is None


# ---- through the gateway ------------------------------------------------------------------


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SGLangDouble, SGLangDouble]]:
    async with SGLangDouble(reply="one two three four five six") as a, \
            SGLangDouble(reply="four five six") as b:
        yield a, b


async def resuming_gateway(a: SGLangDouble, b: SGLangDouble, start_gateway: GatewayFactory,
                           **overrides: Any) -> GatewayUnderTest:
    """A gateway over ``a`` and ``b`` whose next chat (MESSAGES) goes to ``a`` first."""
    settings = make_settings(a.url, b.url, placement=PlacementSettings(policy="cache_aware"),
                             **{"resume": True, "grpc_enabled": False, **overrides})
    gw = await start_gateway(settings)
    pool = gw.gateway.pool
    first = next(e for e in pool.engines if e.client.url == a.url)
    pool.placement.record(first.name, pool.placement.prefix({"messages": MESSAGES}))
    return gw


def chat_requests(double: SGLangDouble) -> list[Any]:
    return [r.body for r in double.requests_to("/v1/chat/completions")]


async def metric(gw: GatewayUnderTest, http: aiohttp.ClientSession, prefix: str) -> float:
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


async def test_a_stream_cut_mid_answer_is_continued_on_the_other_engine_as_one_answer(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway)
    a.script(Fault.DROP_MID_STREAM)  # three tokens, then the connection is cut
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        assert r.status == 200 and r.headers["X-LKN-Engine"] == "engine-1"
        events = await sse_events(r)
    assert events[-1] == "[DONE]"
    assert not any("error" in e for e in events if isinstance(e, dict))
    # The client got one answer: the first engine's three words, then the continuation.
    assert content_of(events) == "one two threefour five six"
    ids = {e["id"] for e in events if isinstance(e, dict)}
    assert len(ids) == 1
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e.get("choices")][-1] == "stop"
    continuation = chat_requests(b)[-1]
    assert continuation["messages"] == [*MESSAGES, {"role": "assistant", "content": "one two three"}]
    assert continuation["continue_final_message"] is True and continuation["max_tokens"] == 7
    assert await metric(gw, http, 'lkn_stream_resumes_total{result="resumed"}') == 1
    assert await metric(gw, http, "lkn_engine_failures_total") == 1  # the first engine's


async def test_without_resume_the_cut_stream_ends_with_an_error_event(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway, resume=False)
    a.script(Fault.DROP_MID_STREAM)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        events = await sse_events(r)
    assert events[-1] == "[DONE]" and "error" in events[-2]
    assert content_of(events) == "one two three"
    assert chat_requests(b) == []


async def test_when_no_engine_can_continue_the_error_event_still_ends_the_stream(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession,
) -> None:
    async with SGLangDouble(reply="one two three four") as only:
        gw = await start_gateway(make_settings(only.url, resume=True, grpc_enabled=False))
        only.script(Fault.DROP_MID_STREAM)
        async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
            events = await sse_events(r)
        assert events[-1] == "[DONE]" and "error" in events[-2]
        assert await metric(gw, http, 'lkn_stream_resumes_total{result="failed"}') == 1


async def test_a_continuation_that_fails_too_is_tried_on_no_engine_twice(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway)
    a.script(Fault.DROP_MID_STREAM)
    b.script(Fault.HTTP_500)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        events = await sse_events(r)
    assert events[-1] == "[DONE]" and "error" in events[-2]
    assert len(chat_requests(a)) == 1 and len(chat_requests(b)) == 1


async def test_requests_with_tools_are_not_resumed(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway)
    a.script(Fault.DROP_MID_STREAM)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    async with http.post(gw.v1 + "/chat/completions",
                         json={**STREAM, "tools": tools, "tool_choice": "none"}) as r:
        events = await sse_events(r)
    assert events[-1] == "[DONE]" and "error" in events[-2]
    assert chat_requests(b) == []


async def test_grpc_streams_are_resumed_alike(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
) -> None:
    a, b = pair
    gw = await resuming_gateway(a, b, start_gateway, grpc_enabled=True)
    a.script(Fault.DROP_MID_STREAM)
    chat = pb.Chat(messages=[pb.ChatMessage(role="user", content="Count for me")])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stub = pb_grpc.GatewayStub(channel)
        events = [e async for e in stub.Generate(pb.GenerateRequest(
            model="smollm2", chat=chat, sampling=pb.SamplingParams(max_tokens=10)))]
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert text == "one two threefour five six"
    assert events[-1].WhichOneof("event") == "finish"
    assert events[-1].finish.finish_reason == "stop"


async def test_the_budget_of_a_continuation_counts_tokens_not_chunks(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession,
) -> None:
    # Three tokens per chunk (SGLang's --stream-interval 3): six tokens in two chunks, then
    # the cut. The client asked for 10: the continuation may write 4 more, not 8.
    async with SGLangDouble(reply="one two three four five six seven eight nine ten",
                            fault_after=6) as a, SGLangDouble(reply="seven eight") as b:
        a.stream_interval = 3
        gw = await resuming_gateway(a, b, start_gateway)
        a.script(Fault.DROP_MID_STREAM)
        async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
            events = await sse_events(r)
        assert events[-1] == "[DONE]"
        assert content_of(events) == "one two three four five sixseven eight"
        continuation = chat_requests(b)[-1]
        assert continuation["max_tokens"] == 10 - 6
        assert [x.body["prompt"] for x in b.requests_to("/v1/tokenize")] == [
            "one two three four five six"]


async def test_an_engine_that_cannot_count_tokens_is_given_the_bytes_as_an_upper_bound() -> None:
    async with SGLangDouble() as double:
        spec = EngineSpec(double.url, "openai")
        async with HttpEngineClient(spec, make_settings(double.url)) as client:
            # The double answers /v1/tokenize; a generic OpenAI server may not (404 here).
            missing = EngineSpec(double.url + "/nothing", "openai")
            async with HttpEngineClient(missing, make_settings(double.url)) as none:
                text = "naïve café"
                assert await delivered_tokens(none, text, 2, "rid", time.monotonic() + 5) == \
                    len(text.encode("utf-8"))
            assert await delivered_tokens(client, "naïve café", 1, "rid",
                                          time.monotonic() + 5) == 2
            assert await delivered_tokens(client, "naïve café", 5, "rid",
                                          time.monotonic() + 5) == 5  # never under the chunks
