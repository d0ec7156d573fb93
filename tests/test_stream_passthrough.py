"""The stream's common case costs what a pass-through costs: a plain text event is read with
one match (and reads exactly as the full parse would), and events that arrived together from
the engine are written together, never held while the request waits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lkn.engines import wire
from lkn.errors import EngineError
from lkn.rest.sse import EventStream

pytestmark = pytest.mark.fast

HEAD: dict[str, Any] = {"id": "r1", "object": "chat.completion.chunk", "created": 17,
                        "model": "smollm2"}
USAGE = {"prompt_tokens": 7, "total_tokens": 9, "completion_tokens": 2}


def _event(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish,
              "matched_stop": None}  # fmt: skip
    return {**HEAD, "choices": [choice], **extra}


def _text(text: Any, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
              "matched_stop": None}  # fmt: skip
    return {**HEAD, "object": "text_completion", "choices": [choice], "usage": None, **extra}


EVENTS = [
    _event({"reasoning_content": None, "role": "assistant", "content": ""}),
    _event({"reasoning_content": None, "content": " hello"}),
    _event({"reasoning_content": None, "content": 'a "quoted"\nline \\ ñ 😀'}),
    _event({"reasoning_content": None, "content": " abort error"}),
    _event({"content": " x", "tool_calls": None, "reasoning": None}),
    _event({"reasoning_content": None, "content": " x"}, usage=USAGE),
    _event({"reasoning_content": None, "content": " x"}, usage={**USAGE, "reasoning_tokens": 0}),
    _event({"reasoning_content": "thinking", "content": None}),
    _event({"reasoning_content": None, "content": " x"}, logprobs={"content": []}),
    _event({"reasoning_content": None}, finish="stop"),
    _event({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                            "function": {"name": "f", "arguments": "{"}}]}),
    {**HEAD, "choices": [], "usage": USAGE},
    _text(" hello"), _text("a\nb", usage=USAGE), _text(" end", finish="length"),
    {"error": {"message": "bad", "code": 400}},
]


def _full_parse(raw: bytes) -> object:
    """What the full parse makes of ``raw`` (the fast path switched off)."""
    saved = wire._plain_chunk
    wire._plain_chunk = lambda _raw: None
    try:
        return _outcome(raw)
    finally:
        wire._plain_chunk = saved


def _outcome(raw: bytes) -> object:
    try:
        c = wire.parse_chunk(raw, "e")
    except EngineError as exc:
        return str(exc)
    return (c.raw, c.text, c.reasoning, c.finish_reason, c.usage, c.usage_only, c.tool_calls)


@pytest.mark.parametrize("ascii_only", [True, False])
def test_plain_events_read_as_the_full_parse_reads_them(ascii_only: bool) -> None:
    plain = 0
    for event in EVENTS:
        for raw in (json.dumps(event, ensure_ascii=ascii_only, separators=(",", ":")).encode(),
                    json.dumps(event).encode()):  # fmt: skip
            assert _outcome(raw) == _full_parse(raw), raw
            plain += wire._plain_chunk(raw) is not None
    assert plain >= 8  # the compact text events took the fast path


@pytest.mark.parametrize("raw", [
    b'{"id":"r","object":"chat.completion.chunk","created":01,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"a"},"logprobs":null,"finish_reason":null}]}',
    b'{"id":"r","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"a\\q"},"logprobs":null,"finish_reason":null}]}',
    b'{"id":"r","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"a\xff"},"logprobs":null,"finish_reason":null}]}',
    b'{"id":"r","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":"a\x01"},"logprobs":null,"finish_reason":null}]}',
])
def test_malformed_look_alikes_are_still_malformed(raw: bytes) -> None:
    assert wire._plain_chunk(raw) is None
    with pytest.raises(EngineError, match="malformed"):
        wire.parse_chunk(raw, "e")


async def _serve(handler: Any) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.router.add_get("/", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_events_that_came_together_go_out_in_one_write() -> None:
    writes: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        async with EventStream(request, 0, {"Content-Type": "text/event-stream"}) as events:
            await events.open()
            real = events.response.write

            async def counted(data: bytes) -> None:
                writes.append(bytes(data))
                await real(data)

            events.response.write = counted  # type: ignore[method-assign]
            for i in range(3):
                await events.send(b"%d" % i, more=i < 2)
            await events.send(b"held", more=True)
            await events.finish(b"[DONE]")
        return events.response

    client = await _serve(handler)
    try:
        body = await (await client.get("/")).read()
    finally:
        await client.close()
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: held\n\ndata: [DONE]\n\n"
    assert writes == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n", b"data: held\n\ndata: [DONE]\n\n"]


@pytest.mark.parametrize("batched", [False, True])
async def test_a_held_event_is_sent_as_soon_as_the_task_waits(batched: bool) -> None:
    """Held events (``send`` with ``more``, or a read's events held and flushed with
    ``more``) wait only until the request's task does."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        async with EventStream(request, 0, {"Content-Type": "text/event-stream"}) as events:
            if batched:
                events.hold(b"first")
                await events.flush(more=True)
            else:
                await events.send(b"first", more=True)
            await release.wait()  # the engine is slow: "first" must not wait for it
            await events.send(b"second", more=True)
            await events.finish(b"[DONE]")
        return events.response

    client = await _serve(handler)
    try:
        response = await client.get("/")
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        release.set()
        rest = await response.read()
    finally:
        await client.close()
    assert first == b"data: first\n\n"
    assert rest == b"data: second\n\ndata: [DONE]\n\n"
