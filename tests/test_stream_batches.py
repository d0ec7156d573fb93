"""The events of one network read travel together: the engine client hands them out as one
batch, and what came after them in that read (an unreadable event, the end marker) counts
only once they have been taken, exactly as one event at a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lkn.engines import HttpEngineClient
from lkn.engines.batches import ChunkStream, batch_of
from lkn.errors import EngineError
from lkn.exchange.events import replay
from lkn.values import Chunk, Route
from tests.conftest import make_settings

pytestmark = pytest.mark.fast


def _event(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
    event = {"id": "r", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [choice]}  # fmt: skip
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class _Engine:
    """A server that sends its reads as scripted (one write, one flush each) and records
    the aborts it is asked for."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads
        self.aborted: list[str] = []
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._stream)
        app.router.add_post("/abort_request", self._abort)
        self.server = TestServer(app)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for data in self.reads:
            await response.write(data)
            await asyncio.sleep(0.05)  # one read each
        await response.write_eof()
        return response

    async def _abort(self, request: web.Request) -> web.Response:
        self.aborted.append((await request.json())["rid"])
        return web.json_response({})


@asynccontextmanager
async def _client(engine: _Engine) -> AsyncIterator[HttpEngineClient]:
    await engine.server.start_server()
    url = str(engine.server.make_url("")).rstrip("/")
    settings = make_settings(url)
    client = HttpEngineClient(settings.engines[0], settings)
    try:
        yield client
    finally:
        await client.close()
        await engine.server.close()


async def test_one_read_is_one_batch_and_an_unreadable_event_counts_after_it() -> None:
    engine = _Engine([_event("a") + _event("b"), _event("c") + b"data: {nope\n\n" + _event("d")])
    async with _client(engine) as client:
        stream = client.stream(Route.CHAT, {"messages": []}, "rid-1")
        assert isinstance(stream, ChunkStream)
        first = await stream.__anext__()
        assert (first.text, first.more) == ("a", True)
        assert [c.text for c in stream.ready()] == ["b"]
        batch = await stream.batch()
        assert [(c.text, c.more) for c in batch] == [("c", True)]
        with pytest.raises(EngineError, match="malformed"):
            await stream.batch()
        await asyncio.sleep(0.1)
        assert engine.aborted == ["rid-1"]


async def test_the_end_marker_counts_once_the_last_events_were_taken() -> None:
    """Left right after the last events of the read that ends with ``[DONE]``, the stream
    is abandoned as before (the engine is told to drop the request)."""
    engine = _Engine([_event("a"), _event("b", finish="stop") + b"data: [DONE]\n\n"])
    async with _client(engine) as client:
        stream = client.stream(Route.CHAT, {"messages": []}, "rid-2")
        assert [c.text for c in await batch_of(stream)] == ["a"]
        assert [c.finish_reason for c in await batch_of(stream)] == ["stop"]
        await stream.aclose()
        await asyncio.sleep(0.1)
        assert engine.aborted == ["rid-2"]
        whole = client.stream(Route.CHAT, {"messages": []}, "rid-3")
        assert [c.text async for c in whole] == ["a", "b"]
        await asyncio.sleep(0.1)
        assert engine.aborted == ["rid-2"]


async def test_one_chunk_at_a_time_from_any_other_iterator() -> None:
    chunks = [Chunk(raw=b"{}", text="x"), Chunk(raw=b"{}", text="y")]
    rest = replay(chunks)
    assert await batch_of(rest) == chunks[:1]
    assert await batch_of(rest) == chunks[1:]
    with pytest.raises(StopAsyncIteration):
        await batch_of(rest)


async def test_chunk_by_chunk_and_batch_by_batch_read_alike() -> None:
    async def batches() -> AsyncGenerator[list[Chunk], None]:
        for texts in (["a", "b", "c"], ["d"], ["e", "f"]):
            yield [Chunk(raw=b"{}", text=t) for t in texts]

    one: list[Any] = [c.text async for c in ChunkStream(batches())]
    mixed = ChunkStream(batches())
    got = [(await mixed.__anext__()).text]
    got += [c.text for c in await mixed.batch()]
    got += [c.text for c in await mixed.batch()]
    got += [(await mixed.__anext__()).text, *(c.text for c in await mixed.batch())]
    assert one == got == list("abcdef")
