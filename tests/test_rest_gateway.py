"""The REST surface against the SGLang test double, on real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest

from lkn.breaker import BreakerState
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "hello there"}]}


async def sse_events(response: aiohttp.ClientResponse) -> list[Any]:
    """Parse an SSE body into its data payloads (JSON objects, or the string '[DONE]')."""
    events: list[Any] = []
    async for line in response.content:
        line = line.strip()
        if not line or line.startswith(b":"):
            continue  # blank separators; SSE comments (the keep-alive of a slow first token)
        assert line.startswith(b"data: "), line
        payload = line[6:]
        events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return events


def content_of(events: list[Any]) -> str:
    text = ""
    for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices", []):
                text += (choice.get("delta") or {}).get("content") or choice.get("text") or ""
    return text


# ---- happy paths ----------------------------------------------------------------------


async def test_chat_non_streaming_passes_the_engine_body_through(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "max_tokens": 5}) as r:
        assert r.status == 200
        body = await r.json()
        assert r.headers["X-LKN-Mode"] in ("FLUIDO", "ANALITICO")
        rid = r.headers["X-Request-Id"]
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] == 5
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert sent["rid"] == rid == body["id"]
    assert sent["messages"] == CHAT["messages"]


async def test_chat_stream_is_faithful_and_ends_with_done(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    direct = await _stream(http, double.url + "/v1/chat/completions", {**CHAT, "max_tokens": 6})
    through = await _stream(http, gw.v1 + "/chat/completions", {**CHAT, "max_tokens": 6})
    assert through[-1] == "[DONE]"
    assert content_of(through) == content_of(direct) != ""
    # Same chunk sequence as the engine's own (ids differ: each request has its own rid).
    shapes = [_shape(e) for e in through]
    assert shapes == [_shape(e) for e in direct]
    assert not any(isinstance(e, dict) and "usage" in e and not e["choices"] for e in through)


def _shape(event: Any) -> Any:
    if not isinstance(event, dict):
        return event
    return {k: v for k, v in event.items() if k not in ("id", "created")}


async def _stream(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[Any]:
    async with http.post(url, json={**body, "stream": True}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        return await sse_events(r)


async def test_usage_chunk_only_when_the_client_asked(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    events = await _stream(http, gw.v1 + "/chat/completions",
                           {**CHAT, "max_tokens": 4, "stream_options": {"include_usage": True}})
    usage = [e for e in events if isinstance(e, dict) and e.get("usage") and not e["choices"]]
    assert len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == 4
    assert events[-1] == "[DONE]"


async def test_tools_logprobs_and_unknown_fields_pass_through(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    body = {**CHAT, "messages": [{"role": "user", "content": "CALL_TOOL now"}], "tools": tools,
            "logprobs": True, "top_logprobs": 3, "some_future_field": {"x": 1}, "top_k": 5}
    events = await _stream(http, gw.v1 + "/chat/completions", body)
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert sent["tools"] == tools and sent["some_future_field"] == {"x": 1} and sent["top_k"] == 5
    deltas = [c["delta"] for e in events if isinstance(e, dict) for c in e["choices"]]
    assert any(d.get("tool_calls") for d in deltas)
    finishes = [c["finish_reason"] for e in events if isinstance(e, dict) for c in e["choices"]]
    assert "tool_calls" in finishes


async def test_logprobs_survive_streaming(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    events = await _stream(http, gw.v1 + "/chat/completions",
                           {**CHAT, "max_tokens": 3, "logprobs": True, "top_logprobs": 2})
    logprobs = [c["logprobs"] for e in events if isinstance(e, dict) for c in e["choices"]
                if c.get("logprobs")]
    assert len(logprobs) == 3
    assert all(len(lp["content"][0]["top_logprobs"]) == 2 for lp in logprobs)


async def test_completions_stream_and_not(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.post(gw.v1 + "/completions", json={"prompt": "Once upon", "max_tokens": 4}) as r:
        body = await r.json()
        assert r.status == 200 and body["object"] == "text_completion"
    events = await _stream(http, gw.v1 + "/completions", {"prompt": "Once upon", "max_tokens": 4})
    assert events[-1] == "[DONE]" and len(content_of(events).split()) == 4


async def test_models_health_ready_metrics(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.get(gw.v1 + "/models") as r:
        ids = [m["id"] for m in (await r.json())["data"]]
    assert ids[0] == "smollm2"
    async with http.get(gw.v1 + "/models/smollm2") as r:
        assert r.status == 200
    async with http.get(gw.v1 + "/models/nope") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "model_not_found"
    async with http.get(gw.url + "/health") as r:
        assert r.status == 200
    async with http.get(gw.url + "/ready") as r:
        assert r.status == 200 and (await r.json())["engines"][0]["breaker"] == "closed"
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 200
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    for name in ("lkn_requests_total", "lkn_time_to_first_token_seconds_bucket",
                 "lkn_tokens_total", "lkn_requests_in_flight", "lkn_engine_breaker_state",
                 "lkn_errors_total"):
        assert name in text
    assert 'lkn_requests_total{frontend="rest",outcome="200",route="chat"} 1.0' in text


async def test_model_names_are_mapped_to_the_engines_name(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    for name in ("smollm2:latest", "smollm2+analitico", "smollm2"):
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "model": name}) as r:
            assert r.status == 200, await r.text()
        assert double.requests_to("/v1/chat/completions")[-1].body["model"] == "smollm2"


async def test_an_unknown_model_is_404_model_not_found_and_never_reaches_an_engine(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    for stream in (False, True):
        body = {**CHAT, "model": "gpt-4", "stream": stream}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 404
            error = (await r.json())["error"]
        assert error["code"] == "model_not_found" and error["param"] == "model"
        assert error["type"] == "invalid_request_error"
    assert double.requests_to("/v1/chat/completions") == []
    async with http.get(gw.url + "/metrics") as r:
        assert 'lkn_requests_total{frontend="rest",outcome="404",route="chat"} 2.0' in await r.text()


async def test_sockets_use_tcp_nodelay(gw: GatewayUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]))
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    engine = gw.gateway.pool.engines[0].client
    session = engine._session
    connector = session.connector
    assert connector is not None
    async with session.get(engine._url("/health")):
        pass
    conns = [p.transport for protos in connector._conns.values() for p, _ in protos]
    assert conns, "keep-alive connection to the engine expected"
    for transport in conns:
        assert transport is not None
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    writer.close()


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload,status,param",
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps({"model": "m"}).encode(), 400, "messages"),
        (json.dumps({"messages": []}).encode(), 400, "messages"),
        (json.dumps({"messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "messages[0]"),
        (json.dumps({**CHAT, "stream": "yes"}).encode(), 400, "stream"),
        (json.dumps({**CHAT, "max_tokens": -1}).encode(), 400, "max_tokens"),
        (json.dumps({**CHAT, "max_tokens": "10"}).encode(), 400, "max_tokens"),
        (json.dumps({**CHAT, "temperature": 9}).encode(), 400, "temperature"),
        (json.dumps({**CHAT, "stop": [1]}).encode(), 400, "stop"),
    ],
)
async def test_bad_input_gets_an_openai_error_and_never_reaches_the_engine(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession,
    payload: bytes, status: int, param: str | None,
) -> None:
    async with http.post(gw.v1 + "/chat/completions", data=payload,
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == status
        error = (await r.json())["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert double.requests_to("/v1/chat/completions") == []


async def test_oversize_body_is_413(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, max_body_bytes=2048))
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    async with http.post(gw.v1 + "/chat/completions", json=big) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "request_too_large"
    assert double.requests_to("/v1/chat/completions") == []


async def test_unknown_route_and_method_are_openai_errors(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.get(gw.v1 + "/nothing") as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.get(gw.v1 + "/chat/completions") as r:
        assert r.status == 405 and "error" in await r.json()


async def test_engine_4xx_is_passed_on_and_not_counted_against_it(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    double.script(*([Fault.HTTP_400] * 6))
    for _ in range(6):
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
    assert gw.gateway.pool.engines[0].breaker.state is BreakerState.CLOSED


async def test_api_key(double: SGLangDouble, start_gateway: GatewayFactory,
                       http: aiohttp.ClientSession) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="s3cret"))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 401 and (await r.json())["error"]["type"] == "authentication_error"
    async with http.post(gw.v1 + "/chat/completions", json=CHAT,
                         headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with http.post(gw.v1 + "/chat/completions", json=CHAT,
                         headers={"Authorization": "Bearer s3cret"}) as r:
        assert r.status == 200
    async with http.get(gw.url + "/health") as r:
        assert r.status == 200
    assert len(double.requests_to("/v1/chat/completions")) == 1


async def test_over_the_concurrency_limit_is_429(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=0.05) as slow:
        gw = await start_gateway(make_settings(slow.url, grpc_enabled=False, max_concurrency=2))
        body = {**CHAT, "max_tokens": 8}
        first = [asyncio.create_task(http.post(gw.v1 + "/chat/completions", json=body))
                 for _ in range(2)]
        await wait_for(lambda: gw.gateway.active >= 2)
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["type"] == "rate_limit_error"
        for task in first:
            response = await task
            assert response.status == 200
            response.release()
        assert gw.gateway.active == 0


async def test_prompts_are_logged_only_when_enabled(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = {**CHAT, "messages": [{"role": "user", "content": "my secret plan"}]}
    caplog.set_level("INFO")
    quiet = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(quiet.v1 + "/chat/completions", json=secret) as r:
        assert r.status == 200
    assert "secret" not in caplog.text and "rid=" in caplog.text
    loud = await start_gateway(make_settings(double.url, grpc_enabled=False, log_prompts=True))
    async with http.post(loud.v1 + "/chat/completions", json=secret) as r:
        assert r.status == 200
        rid = r.headers["X-Request-Id"]
    assert f"prompt rid={rid} messages=" in caplog.text and "my secret plan" in caplog.text
