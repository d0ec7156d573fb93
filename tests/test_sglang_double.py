"""The SGLang test double speaks SGLang 0.5.23's wire format and misbehaves exactly as scripted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from scripts.lib.sglang_double import Fault, SGLangDouble

pytestmark = pytest.mark.asyncio

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@pytest_asyncio.fixture
async def double() -> AsyncIterator[SGLangDouble]:
    async with SGLangDouble() as d:
        yield d


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


def _parse(raw: bytes) -> list[Any]:
    """Split an SSE body into parsed JSON events ("[DONE]" kept as a string); checks the framing."""
    assert raw.endswith(b"\n\n")
    events: list[Any] = []
    for block in raw.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: "), block
        payload = block[len(b"data: ") :]
        events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return events


async def _sse(resp: aiohttp.ClientResponse) -> list[Any]:
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    return _parse(await resp.read())


async def _read_events(resp: aiohttp.ClientResponse, count: int) -> list[Any]:
    """Read `count` events off a live stream, consuming each event's blank separator line too."""
    events: list[Any] = []
    while len(events) < count:
        line = await resp.content.readline()
        assert line.startswith(b"data: "), line
        assert await resp.content.readline() == b"\n"
        events.append(json.loads(line[6:]))
    return events


async def _eventually(check: Any, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


# -- chat -------------------------------------------------------------------------------------------
async def test_chat_non_stream_has_sglang_shape(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(double.url + CHAT, json={"model": "smollm2", "messages": HELLO, "max_tokens": 5,
                                                  "rid": "r-1"}) as resp:  # fmt: skip
        assert resp.status == 200
        body = await resp.json()
    assert body["id"] == "r-1"
    assert body["object"] == "chat.completion"
    assert body["model"] == "smollm2"
    assert body["metadata"] == {"weight_version": "default"}
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Echo: What is the capital",
                                 "reasoning_content": None}  # fmt: skip
    assert (choice["logprobs"], choice["finish_reason"], choice["matched_stop"]) == (None, "length", None)
    assert body["usage"] == {"prompt_tokens": 6 + 5, "total_tokens": 16, "completion_tokens": 5,
                             "prompt_tokens_details": None, "reasoning_tokens": 0,
                             "completion_tokens_details": None}  # fmt: skip


async def test_chat_without_max_tokens_stops_with_matched_eos(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(double.url + CHAT, json={"messages": HELLO}) as resp:
        body = await resp.json()
    assert len(body["id"]) == 32
    assert body["usage"]["completion_tokens"] == 16
    assert (body["choices"][0]["finish_reason"], body["choices"][0]["matched_stop"]) == ("stop", 2)


async def test_chat_stream_sends_role_content_finish_usage_done(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(reply="Paris is nice") as double:
        req = {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}, "rid": "s-1"}
        async with http.post(double.url + CHAT, json=req) as resp:
            events = await _sse(resp)
    assert events[-1] == "[DONE]"
    role, *content, final, usage = events[:-1]
    assert role["choices"][0]["delta"] == {"reasoning_content": None, "role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in content] == [
        {"reasoning_content": None, "content": t} for t in ("Paris", " is", " nice")
    ]
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert final["choices"] == [{"index": 0, "delta": {"reasoning_content": None}, "logprobs": None,
                                 "finish_reason": "stop", "matched_stop": 2}]  # fmt: skip
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 11, "total_tokens": 14, "completion_tokens": 3, "reasoning_tokens": 0}
    assert {e["id"] for e in events[:-1]} == {"s-1"}
    assert {e["object"] for e in events[:-1]} == {"chat.completion.chunk"}


async def test_chat_stream_without_include_usage_ends_with_finish_chunk(
    double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    async with http.post(double.url + CHAT, json={"messages": HELLO, "stream": True, "max_tokens": 2}) as resp:
        events = await _sse(resp)
    assert len(events) == 1 + 2 + 1 + 1
    assert events[-2]["choices"][0]["finish_reason"] == "length"


async def test_chat_logprobs_use_the_configured_distribution(http: aiohttp.ClientSession) -> None:
    dist = [("Paris", -0.2), (" Lyon", -1.9), (" Nice", -2.5)]
    async with SGLangDouble(top_logprobs=dist) as double:
        req = {"messages": HELLO, "max_tokens": 2, "logprobs": True, "top_logprobs": 2}
        async with http.post(double.url + CHAT, json=req) as resp:
            body = await resp.json()
        async with http.post(double.url + CHAT, json={**req, "stream": True}) as resp:
            events = await _sse(resp)
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 2
    assert content[0]["token"] == "Echo:"
    assert content[0]["bytes"] == list(b"Echo:")
    assert content[0]["logprob"] == -0.2
    assert content[0]["top_logprobs"] == [{"token": "Paris", "bytes": list(b"Paris"), "logprob": -0.2},
                                          {"token": " Lyon", "bytes": list(b" Lyon"), "logprob": -1.9}]  # fmt: skip
    streamed = [e["choices"][0]["logprobs"]["content"] for e in events[1:3]]
    assert streamed == [[content[0]], [content[1]]]


async def test_chat_rejects_bad_requests_like_sglang(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(double.url + CHAT, data=json.dumps({"messages": HELLO}),
                         headers={"Content-Type": "text/plain"}) as resp:  # fmt: skip
        assert resp.status == 400
        assert (await resp.json())["type"] == "Bad Request"
    async with http.post(double.url + CHAT, json={"messages": []}) as resp:
        assert resp.status == 400
        body = await resp.json()
        assert set(body) == {"object", "message", "type", "param", "code"}
        assert (body["object"], body["type"], body["param"], body["code"]) == ("error", "BadRequestError", None, 400)
    async with http.post(double.url + CHAT, json={"model": "llama3:8b", "messages": HELLO}) as resp:
        assert resp.status == 400
        assert "LoRA adapter '8b' was requested, but LoRA is not enabled" in (await resp.json())["message"]
    assert double.live_rids == set()


async def test_chat_with_tools_and_call_tool_emits_tool_calls(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]  # fmt: skip
    req = {"messages": [{"role": "user", "content": "please CALL_TOOL now"}], "tools": tools}
    async with http.post(double.url + CHAT, json=req) as resp:
        body = await resp.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "test", "days": 1}
    async with http.post(double.url + CHAT, json={**req, "stream": True}) as resp:
        events = await _sse(resp)
    deltas = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[1:-2]]
    assert deltas[0]["function"]["name"] == "get_weather"
    assert "".join(d["function"]["arguments"] for d in deltas) == call["function"]["arguments"]
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_chat_duplicate_live_rid_is_rejected(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        req = {"messages": HELLO, "stream": True, "rid": "dup", "max_tokens": 6}
        async with http.post(double.url + CHAT, json=req) as first:
            await _read_events(first, 1)
            assert double.live_rids == {"dup"}
            async with http.post(double.url + CHAT, json={**req, "stream": False}) as resp:
                assert resp.status == 400
                assert (await resp.json())["message"] == "Duplicate request ID detected: dup"
            async with http.post(double.url + CHAT, json=req) as resp:
                events = await _sse(resp)
            assert events == [{"error": {"object": "error", "message": "Duplicate request ID detected: dup",
                                         "type": "BadRequestError", "param": None, "code": 400}}, "[DONE]"]  # fmt: skip
            assert (await _sse(first))[-1] == "[DONE]"
        assert double.live_rids == set()


# -- completions ------------------------------------------------------------------------------------
async def test_completions_stream_puts_finish_on_last_text_chunk(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    req = {"prompt": "Once upon", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post(double.url + "/v1/completions", json=req) as resp:
        events = await _sse(resp)
    *texts, usage, done = events
    assert done == "[DONE]"
    assert [e["choices"][0]["text"] for e in texts] == ["Echo:", " Once", " upon"]
    assert [e["choices"][0]["finish_reason"] for e in texts] == [None, None, "length"]
    assert all(e["usage"] is None and e["object"] == "text_completion" for e in texts)
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    async with http.post(double.url + "/v1/completions", json={"prompt": "Once upon"}) as resp:
        body = await resp.json()
    assert body["usage"]["completion_tokens"] == 16
    assert body["choices"][0]["finish_reason"] == "length"


# -- native /generate -------------------------------------------------------------------------------
async def test_generate_stream_is_cumulative(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    req = {"text": "The capital of France is", "sampling_params": {"max_new_tokens": 5}, "stream": True, "rid": "g1"}
    async with http.post(double.url + "/generate", json=req) as resp:
        events = await _sse(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) == 5
    for prev, cur in zip(chunks, chunks[1:]):
        assert cur["text"].startswith(prev["text"]) and len(cur["text"]) > len(prev["text"])
        assert cur["output_ids"][: len(prev["output_ids"])] == prev["output_ids"]
    assert [c["meta_info"]["completion_tokens"] for c in chunks] == [1, 2, 3, 4, 5]
    assert [c["meta_info"]["finish_reason"] for c in chunks[:-1]] == [None] * 4
    last = chunks[-1]
    assert last["text"] == "Echo: The capital of France"
    assert last["meta_info"]["finish_reason"] == {"type": "length", "length": 5}
    assert last["meta_info"]["id"] == "g1"
    assert last["meta_info"]["prompt_tokens"] == 5
    assert "e2e_latency" in last["meta_info"] and "response_sent_to_client_ts" in chunks[0]["meta_info"]
    assert "output_token_logprobs" not in last["meta_info"]


async def test_generate_non_stream_defaults_and_stop(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    async with http.post(double.url + "/generate", json={"text": "hi"}) as resp:
        body = await resp.json()
    assert len(body["output_ids"]) == body["meta_info"]["completion_tokens"] == 16
    assert body["meta_info"]["finish_reason"] == {"type": "stop", "matched": 2}
    req = {"text": "a b c", "sampling_params": {"max_new_tokens": 10, "stop": "b"}}
    async with http.post(double.url + "/generate", json=req) as resp:
        body = await resp.json()
    assert body["text"] == "Echo: a"
    assert body["meta_info"]["finish_reason"] == {"type": "stop", "matched": "b"}


async def test_generate_logprobs_are_triples(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    req: dict[str, Any] = {"text": "x", "sampling_params": {"max_new_tokens": 3}, "return_logprob": True,
                           "top_logprobs_num": 4}  # fmt: skip
    async with http.post(double.url + "/generate", json=req) as resp:
        meta = (await resp.json())["meta_info"]
    assert meta["output_token_logprobs_length"] == 3
    assert meta["input_token_logprobs"] == [] and meta["input_top_logprobs"] == []
    for (lp, tid, text), top in zip(meta["output_token_logprobs"], meta["output_top_logprobs"]):
        assert isinstance(lp, float) and isinstance(tid, int) and text is None
        assert len(top) == 4 and top[0] == [lp, tid, None]
        assert all(len(t) == 3 and t[2] is None for t in top)
    req["return_text_in_logprobs"] = True
    req["stream"] = True
    async with http.post(double.url + "/generate", json=req) as resp:
        chunks = (await _sse(resp))[:-1]
    assert [len(c["meta_info"]["output_token_logprobs"]) for c in chunks] == [1, 2, 3]
    final = chunks[-1]["meta_info"]
    assert "".join(t[2] for t in final["output_token_logprobs"]) == chunks[-1]["text"]
    assert [t[1] for t in final["output_token_logprobs"]] == chunks[-1]["output_ids"]
    assert all(isinstance(t[2], str) for top in final["output_top_logprobs"] for t in top)


async def test_generate_rejects_unknown_sampling_param(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    req = {"text": "x", "sampling_params": {"max_new_tokens": 2, "foo": 1}}
    async with http.post(double.url + "/generate", json=req) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"].startswith("unknown field `foo`, expected one of `max_new_tokens`, `stop`")


async def test_abort_request_ends_live_native_stream(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        req = {"text": "x", "sampling_params": {"max_new_tokens": 50}, "stream": True, "rid": "ab-1"}
        async with http.post(double.url + "/generate", json=req) as resp:
            first = await _read_events(resp, 2)
            assert double.live_rids == {"ab-1"}
            async with http.post(double.url + "/abort_request", json={"rid": "ab-1", "abort_all": False}) as ab:
                assert ab.status == 200 and await ab.read() == b""
            rest = _parse(await resp.read())
        assert rest[-1] == "[DONE]"
        final = rest[-2]
        assert final["meta_info"]["finish_reason"] == {"type": "abort", "message": "Aborted", "status_code": None,
                                                       "err_type": None}  # fmt: skip
        assert final["text"].startswith(first[-1]["text"])
        assert final["meta_info"]["completion_tokens"] < 50
        assert double.aborts == ["ab-1"]
        assert [r.body for r in double.requests_to("/abort_request")] == [{"rid": "ab-1", "abort_all": False}]
        assert double.live_rids == set() and double.cancelled_rids == []


async def test_abort_request_ends_chat_stream_and_unknown_rid_is_harmless(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        async with http.post(double.url + "/abort_request", json={"rid": "nobody"}) as ab:
            assert ab.status == 200
        req = {"messages": HELLO, "stream": True, "rid": "c-ab", "max_tokens": 50}
        async with http.post(double.url + CHAT, json=req) as resp:
            await _read_events(resp, 2)
            async with http.post(double.url + "/abort_request", json={"rid": "c-ab"}):
                pass
            rest = _parse(await resp.read())
        assert rest[-1] == "[DONE]"
        assert rest[-2]["choices"][0]["finish_reason"] == "abort"
        assert double.aborts == ["nobody", "c-ab"]


# -- faults -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [(Fault.HTTP_500, 500, "InternalServerError"), (Fault.HTTP_503, 503, "503"), (Fault.HTTP_400, 400, "BadRequestError")],
)
async def test_http_faults_reply_with_sglang_error_body(
    double: SGLangDouble, http: aiohttp.ClientSession, fault: Fault, status: int, kind: str
) -> None:
    double.script(fault)
    async with http.post(double.url + CHAT, json={"messages": HELLO, "stream": True}) as resp:
        assert resp.status == status
        body = await resp.json()
    assert (body["object"], body["type"], body["param"], body["code"]) == ("error", kind, None, status)
    if fault is Fault.HTTP_503:
        assert body["message"] == "The request queue is full."
    async with http.post(double.url + CHAT, json={"messages": HELLO}) as resp:
        assert resp.status == 200  # the queue is consumed


async def test_faults_are_scoped_by_path(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.HTTP_503, path="/generate")
    async with http.post(double.url + CHAT, json={"messages": HELLO}) as resp:
        assert resp.status == 200
    async with http.post(double.url + "/generate", json={"text": "x"}) as resp:
        assert resp.status == 503


async def test_drop_before_closes_without_response(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.DROP_BEFORE)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(double.url + CHAT, json={"messages": HELLO}) as resp:
            await resp.read()
    assert double.cancelled_rids == []


async def test_drop_mid_stream_sends_some_chunks_then_breaks(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.DROP_MID_STREAM)
    async with http.post(double.url + CHAT, json={"messages": HELLO, "stream": True}) as resp:
        assert resp.status == 200
        events = await _read_events(resp, 4)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [e["choices"][0]["delta"]["content"] for e in events[1:]] == ["Echo:", " What", " is"]
    assert double.cancelled_rids == []


async def test_stall_never_answers_and_client_departure_is_recorded(
    double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    double.script(Fault.STALL)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(double.url + "/generate", json={"text": "x", "rid": "st-1"},
                             timeout=aiohttp.ClientTimeout(total=0.2)) as resp:  # fmt: skip
            await resp.read()
    await _eventually(lambda: double.cancelled_rids == ["st-1"])
    assert double.live_rids == set()


async def test_stall_mid_stream_sends_chunks_then_hangs(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.STALL_MID_STREAM)
    req = {"text": "x", "stream": True, "rid": "sm-1"}
    async with http.post(double.url + "/generate", json=req) as resp:
        events = await _read_events(resp, 3)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(resp.content.readline(), 0.2)
        assert double.live_rids == {"sm-1"}
    assert [e["meta_info"]["completion_tokens"] for e in events] == [1, 2, 3]
    await _eventually(lambda: double.cancelled_rids == ["sm-1"])


async def test_error_event_fault_on_chat_and_native_streams(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.ERROR_EVENT, Fault.ERROR_EVENT)
    async with http.post(double.url + CHAT, json={"messages": HELLO, "stream": True}) as resp:
        chat = await _sse(resp)
    assert len(chat) == 1 + 3 + 2
    assert chat[-1] == "[DONE]"
    assert set(chat[-2]["error"]) == {"object", "message", "type", "param", "code"}
    assert (chat[-2]["error"]["type"], chat[-2]["error"]["code"]) == ("BadRequestError", 400)
    async with http.post(double.url + "/generate", json={"text": "x", "stream": True}) as resp:
        native = await _sse(resp)
    assert native[-1] == "[DONE]" and len(native) == 3 + 2
    error = native[-2]["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("invalid_request_error", 400, False)
    assert all(c["meta_info"]["finish_reason"] is None for c in native[:3])


async def test_abort_503_fault_on_each_surface(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    double.script(Fault.ABORT_503, Fault.ABORT_503, Fault.ABORT_503)
    async with http.post(double.url + CHAT, json={"messages": HELLO, "stream": True}) as resp:
        chat = await _sse(resp)
    assert chat[-2] == {"error": {"object": "error", "message": "The request queue is full.",
                                  "type": "SERVICE_UNAVAILABLE", "param": None, "code": 503}}  # fmt: skip
    async with http.post(double.url + "/generate", json={"text": "x", "stream": True}) as resp:
        native = await _sse(resp)
    assert native[-2]["meta_info"]["finish_reason"] == {
        "type": "abort", "message": "The request queue is full.", "status_code": 503, "err_type": None}  # fmt: skip
    assert native[-2]["meta_info"]["completion_tokens"] == 3
    async with http.post(double.url + "/generate", json={"text": "x"}) as resp:
        assert resp.status == 503
        assert (await resp.json())["type"] == "503"


async def test_slow_fault_delays_each_token(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(slow_delay=0.05) as double:
        double.script(Fault.SLOW)
        req = {"messages": HELLO, "max_tokens": 4, "stream": True}
        t0 = time.monotonic()
        async with http.post(double.url + CHAT, json=req) as resp:
            events = await _sse(resp)
        slow = time.monotonic() - t0
        t0 = time.monotonic()
        async with http.post(double.url + CHAT, json=req) as resp:
            await _sse(resp)
        fast = time.monotonic() - t0
    assert len(events) == 1 + 4 + 2
    assert slow >= 0.2 > fast


async def test_client_disconnect_mid_stream_is_recorded(http: aiohttp.ClientSession) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        req = {"messages": HELLO, "stream": True, "rid": "gone", "max_tokens": 50}
        resp = await http.post(double.url + CHAT, json=req)
        await _read_events(resp, 2)
        resp.close()
        await _eventually(lambda: double.cancelled_rids == ["gone"])
        assert double.live_rids == set()


# -- operational endpoints --------------------------------------------------------------------------
async def test_operational_endpoints(double: SGLangDouble, http: aiohttp.ClientSession) -> None:
    for path in ("/health", "/ready", "/health_generate"):
        async with http.get(double.url + path) as resp:
            assert resp.status == 200 and await resp.read() == b""
    double.ready = False
    async with http.get(double.url + "/ready") as resp:
        assert resp.status == 503
    async with http.get(double.url + "/v1/models") as resp:
        card = (await resp.json())["data"][0]
    assert {k: card[k] for k in ("id", "object", "owned_by", "root", "parent", "max_model_len")} == {
        "id": "smollm2", "object": "model", "owned_by": "sglang", "root": "smollm2", "parent": None,
        "max_model_len": 8192}  # fmt: skip
    async with http.get(double.url + "/model_info") as resp:
        info = await resp.json()
    assert info["served_model_name"] == "smollm2" and info["is_generation"] is True
    async with http.get(double.url + "/server_info") as resp:
        server = await resp.json()
    assert server["incremental_streaming_output"] is False and server["version"] == "0.5.23"
    async with http.get(double.url + "/v1/loads") as resp:
        loads = await resp.json()
    assert loads["loads"] == [{"dp_rank": 0, "num_running_reqs": 0, "num_waiting_reqs": 0}]
    assert [r.path for r in double.received][:3] == ["/health", "/ready", "/health_generate"]
    assert double.received[0].method == "GET" and double.received[0].body is None


# -- the real OpenAI SDK ----------------------------------------------------------------------------
async def test_openai_sdk_reads_stream_and_non_stream(double: SGLangDouble) -> None:
    client = AsyncOpenAI(base_url=double.url + "/v1", api_key="x", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": HELLO[0]["content"]}]
    try:
        completion = await client.chat.completions.create(model="smollm2", messages=messages, max_tokens=3)
        assert completion.choices[0].message.content == "Echo: What is"
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage is not None and completion.usage.completion_tokens == 3
        stream = await client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=3, stream=True, stream_options={"include_usage": True}
        )
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
        assert text == "Echo: What is"
        assert usage is not None and usage.total_tokens == 11 + 3
    finally:
        await client.close()
    assert double.requests_to(CHAT)[0].headers["Authorization"] == "Bearer x"


# -- CLI --------------------------------------------------------------------------------------------
async def test_cli_prints_ready_and_stops_on_sigterm(http: aiohttp.ClientSession) -> None:
    root = Path(__file__).resolve().parent.parent
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.lib.sglang_double", "--port", "0", "--token-delay", "0", "--model", "m",
        cwd=root, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        assert line.startswith("READY http://127.0.0.1:")
        async with http.get(line.split()[1].strip() + "/v1/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "m"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
