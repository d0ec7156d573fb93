"""Faithful streams over REST: reasoning under the key the client asked for, tool-call deltas
intact, keep-alive comments while nothing else is sent, and the optional decision note."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from lkn.config import ConfigError, load_settings
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast

CHAT: dict[str, Any] = {"model": "smollm2", "max_tokens": 4,
                        "messages": [{"role": "user", "content": "hello there"}]}
THOUGHT = "first think then answer"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}}}}}]


async def sse(response: aiohttp.ClientResponse) -> tuple[list[Any], list[bytes]]:
    """(data payloads, comment lines) of an SSE body."""
    events: list[Any] = []
    comments: list[bytes] = []
    async for line in response.content:
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        if line.startswith(b":"):
            comments.append(line)
            continue
        assert line.startswith(b"data: "), line
        events.append("[DONE]" if line == b"data: [DONE]" else json.loads(line[6:]))
    return events, comments


def deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [c["delta"] for e in events if isinstance(e, dict) for c in e.get("choices", [])]


def reasoning_in(events: list[Any], key: str) -> str:
    return "".join(d.get(key) or "" for d in deltas(events))


# ---- reasoning: both engine spellings, delivered as asked ------------------------------


@pytest.mark.parametrize("engine_key", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("asked, present, absent", [
    (None, ("reasoning_content",), ("reasoning",)),
    ("reasoning_content", ("reasoning_content",), ("reasoning",)),
    ("reasoning", ("reasoning",), ("reasoning_content",)),
    ("both", ("reasoning_content", "reasoning"), ()),
])
async def test_reasoning_is_read_from_either_key_and_delivered_as_asked(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    engine_key: str, asked: str | None, present: tuple[str, ...], absent: tuple[str, ...],
) -> None:
    double.reasoning, double.reasoning_key = THOUGHT, engine_key
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    headers = {} if asked is None else {"X-LKN-Reasoning-Field": asked}
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True},
                         headers=headers) as response:
        assert response.status == 200
        events, _ = await sse(response)
    for key in present:
        assert reasoning_in(events, key) == THOUGHT + " "
    for key in absent:
        assert reasoning_in(events, key) == ""
    assert events[-1] == "[DONE]"
    assert "".join(d.get("content") or "" for d in deltas(events)).startswith("Echo:")

    async with http.post(gw.v1 + "/chat/completions", json=CHAT, headers=headers) as response:
        message = (await response.json())["choices"][0]["message"]
    for key in present:  # read from the engine as a stream (the loop guard watches it)
        assert message[key].strip() == THOUGHT
    for key in absent:
        assert not message.get(key)


async def test_chunks_without_reasoning_pass_through_byte_for_byte(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True},
                         headers={"X-LKN-Reasoning-Field": "reasoning"}) as response:
        body = await response.read()
    # SGLang's own null field is left as it was sent.
    assert body.count(b'"reasoning_content":null') >= 4


async def test_unknown_reasoning_field_is_a_clear_400(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT,
                         headers={"X-LKN-Reasoning-Field": "thoughts"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert "X-LKN-Reasoning-Field" in error["message"] and error["param"] == "X-LKN-Reasoning-Field"


def test_reasoning_field_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert load_settings({}, empty).reasoning_field == "reasoning_content"
    assert load_settings({"LKN_REASONING_FIELD": "Both"}, empty).reasoning_field == "both"
    with pytest.raises(ConfigError, match="LKN_REASONING_FIELD"):
        load_settings({"LKN_REASONING_FIELD": "thoughts"}, empty)


# ---- tool calls ----------------------------------------------------------------------------


async def test_tool_call_deltas_pass_through_intact(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    body = {**CHAT, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "please CALL_TOOL now"}]}
    async with http.post(gw.v1 + "/chat/completions", json=body) as response:
        ours, _ = await sse(response)
    async with http.post(double.url + "/v1/chat/completions", json=body) as response:
        theirs, _ = await sse(response)

    def calls(events: list[Any]) -> list[dict[str, Any]]:
        return [call for d in deltas(events) for call in d.get("tool_calls") or []]

    # The same pieces in the same order; only the call id (derived from the rid) differs.
    strip = [{k: v for k, v in c.items() if k != "id"} for c in calls(ours)]
    assert strip == [{k: v for k, v in c.items() if k != "id"} for c in calls(theirs)]
    first, *rest = calls(ours)
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"]["name"] == "get_weather"
    assert all("id" not in c and c["index"] == 0 for c in rest)
    arguments = "".join(c["function"].get("arguments", "") for c in calls(ours))
    assert json.loads(arguments) == {"city": "test", "days": 1}
    finishes = [c["finish_reason"] for e in ours if isinstance(e, dict)
                for c in e.get("choices", []) if c.get("finish_reason")]
    assert finishes == ["tool_calls"]


async def test_openai_sdk_reassembles_streamed_tool_calls(
    double: SGLangDouble, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with openai.AsyncOpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="smollm2", stream=True, tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "CALL_TOOL please"}])
        name, arguments, finish = "", "", None
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    if call.function is not None:
                        name += call.function.name or ""
                        arguments += call.function.arguments or ""
                finish = choice.finish_reason or finish
    assert name == "get_weather" and json.loads(arguments)["days"] == 1
    assert finish == "tool_calls"


# ---- keep-alive ------------------------------------------------------------------------


async def test_keepalive_comments_flow_during_a_slow_first_token(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(prefill_delay=1.2) as slow:
        gw = await start_gateway(make_settings(slow.url, grpc_enabled=False, sse_keepalive=0.2))
        started = time.monotonic()
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.status == 200
            headers = r.headers
            first_line = await r.content.readline()
            waited = time.monotonic() - started
            events, comments = await sse(r)
    # The response started with a comment long before the first token.
    assert first_line == b": keep-alive\n" and waited < 1.0
    assert len(comments) >= 3
    assert headers["X-Request-Id"] and headers["Content-Type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]" and "".join(d.get("content") or "" for d in deltas(events))


async def test_sdk_ignores_keepalive_comments(start_gateway: GatewayFactory) -> None:
    async with SGLangDouble(prefill_delay=0.6, token_delay=0.3) as slow:
        gw = await start_gateway(make_settings(slow.url, grpc_enabled=False, sse_keepalive=0.1))
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="smollm2", messages=CHAT["messages"], max_tokens=3, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Echo:")


async def test_keepalive_then_engine_error_is_reported_in_the_stream(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    # The engine stays silent past the gateway's read timeout, after keep-alives started.
    async with SGLangDouble(prefill_delay=2.0) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False, sse_keepalive=0.1,
                                               read_timeout=0.6))
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.status == 200
            events, comments = await sse(r)
    assert comments, "the stream was started by keep-alive comments"
    assert "error" in events[-2] and events[-1] == "[DONE]"


async def test_no_comments_when_keepalive_is_off(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(prefill_delay=0.5) as slow:
        gw = await start_gateway(make_settings(slow.url, grpc_enabled=False, sse_keepalive=0.0))
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.headers["X-LKN-Mode"] == "FLUIDO"  # headers wait for the decision
            _, comments = await sse(r)
    assert comments == []


async def test_fast_stream_keeps_its_decision_headers(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, sse_keepalive=5.0))
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True}) as r:
        assert r.headers["X-LKN-Mode"] == "FLUIDO" and r.headers["X-LKN-Strategy"] == "rules"
        _, comments = await sse(r)
    assert comments == []


# ---- the decision note -------------------------------------------------------------------


async def test_decision_note_is_reasoning_never_content(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, decision_note=True))
    maths = {**CHAT, "stream": True,
             "messages": [{"role": "user", "content": "Solve step by step: 3x + 7 = 22"}]}
    async with http.post(gw.v1 + "/chat/completions", json=maths) as r:
        assert r.headers["X-LKN-Mode"] == "ANALITICO"
        events, _ = await sse(r)
    note = reasoning_in(events, "reasoning_content")
    assert note.startswith("L-kn: ANALITICO by rules (")
    assert "maths" in note and "multi-step" in note
    assert note.rstrip().endswith("verification instruction added")
    content = "".join(d.get("content") or "" for d in deltas(events))
    assert "L-kn" not in content and content.startswith("Echo:")
    # The note is the first event, shaped like the engine's chunks.
    first = events[0]
    assert first["object"] == "chat.completion.chunk" and first["id"] == events[1]["id"]
    # Never sent to the engine.
    assert all("L-kn:" not in json.dumps(r.body) for r in double.received if r.body)

    async with http.post(gw.v1 + "/chat/completions",
                         json={**CHAT, "messages": maths["messages"]}) as r:
        message = (await r.json())["choices"][0]["message"]
    assert message["reasoning_content"].startswith("L-kn: ANALITICO")
    assert "L-kn" not in message["content"]


async def test_no_note_for_housekeeping_or_when_off(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, decision_note=True))
    task = {**CHAT, "messages": [{"role": "user", "content": "### Task:\nGenerate a title"}]}
    async with http.post(gw.v1 + "/chat/completions", json=task) as r:
        assert not (await r.json())["choices"][0]["message"].get("reasoning_content")
    off = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(off.v1 + "/chat/completions", json={**CHAT, "stream": True}) as r:
        events, _ = await sse(r)
    assert reasoning_in(events, "reasoning_content") == ""
