"""The engine client on its own, against the SGLang test double."""

from __future__ import annotations

import asyncio

import pytest

from lkn.engines import HttpEngineClient as EngineClient
from lkn.errors import EngineError, EngineRejected, EngineUnavailable
from lkn.values import Route
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import make_settings

pytestmark = pytest.mark.fast

BODY = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 10,
        "stream": True}


async def test_chunks_that_arrived_before_a_drop_are_not_lost_by_a_slow_reader() -> None:
    async with SGLangDouble(drop_grace=0.0) as double:
        client = EngineClient(make_settings(double.url).engines[0], make_settings(double.url))
        double.script(Fault.DROP_MID_STREAM)
        texts: list[str] = []
        with pytest.raises(EngineError):
            async for chunk in client.stream(Route.CHAT, dict(BODY), "rid-1"):
                texts.append(chunk.text)
                # A reader busy elsewhere (e.g. a slow client): the drop lands meanwhile.
                await asyncio.sleep(0.1)
        assert "".join(texts) == "Echo: hello there"
        await client.close()


async def test_error_forms_map_to_typed_errors() -> None:
    async with SGLangDouble() as double:
        settings = make_settings(double.url)
        client = EngineClient(settings.engines[0], settings)
        cases = [(Fault.HTTP_400, EngineRejected), (Fault.HTTP_503, EngineUnavailable),
                 (Fault.ABORT_503, EngineUnavailable), (Fault.ERROR_EVENT, EngineRejected)]
        for fault, error in cases:
            double.script(fault)
            with pytest.raises(error):
                async for _ in client.stream(Route.CHAT, dict(BODY), f"rid-{fault.value}"):
                    pass
        # Native /generate: an abort with a status code inside a 200 body.
        double.script(Fault.ABORT_503)
        with pytest.raises(EngineUnavailable):
            await client.complete("/generate", {"text": "hi", "rid": "n1"}, "n1")
        await client.close()


async def test_requests_carry_our_rid_and_the_engines_own_model_name() -> None:
    async with SGLangDouble() as double:
        settings = make_settings(double.url)
        client = EngineClient(settings.engines[0], settings)
        assert await client.check_ready(1.0) and client.model_id == "smollm2"
        body = {"model": "smollm2+analitico", "messages": BODY["messages"], "max_tokens": 2}
        await client.complete(Route.CHAT, body, "rid-a")
        async for _ in client.stream(Route.CHAT, {**body, "model": "alias:latest",
                                                  "stream": True}, "rid-b"):
            pass
        await client.probe(Route.CHAT, {**body, "model": "x:y"}, "rid-c", top_k=3, tokens=1)
        sent = [r.body for r in double.requests_to("/v1/chat/completions")]
        assert [(b["rid"], b["model"]) for b in sent] == [
            ("rid-a", "smollm2"), ("rid-b", "smollm2"), ("rid-c", "smollm2")]
        assert body["model"] == "smollm2+analitico", "the caller's body is not changed"
        await client.close()


@pytest.mark.parametrize("kind, expected", [("openai", 1.2), ("sglang", None)])
async def test_a_repetition_penalty_reaches_llama_cpp_under_its_own_name(
    kind: str, expected: float | None,
) -> None:
    from lkn.config import EngineSpec

    async with SGLangDouble() as double:
        settings = make_settings(f"{kind}={double.url}")
        client = EngineClient(EngineSpec(double.url, kind), settings)
        body = {"messages": BODY["messages"], "max_tokens": 2, "repetition_penalty": 1.2}
        await client.complete(Route.CHAT, body, "rid-a")
        [sent] = [r.body for r in double.requests_to("/v1/chat/completions")]
        assert sent["repetition_penalty"] == 1.2 and sent.get("repeat_penalty") == expected
        assert "repeat_penalty" not in body, "the caller's body is not changed"
        await client.close()


async def test_an_openai_engine_keeps_idle_connections_shorter_than_llama_cpp_does() -> None:
    """llama.cpp closes an idle keep-alive connection after 5 s; reusing one it has closed
    fails the request before any answer, so such engines keep theirs for 2 s."""
    from lkn.config import EngineSpec, Settings
    from lkn.engines.client import KEEPALIVE_OPENAI, HttpEngineClient

    settings = Settings()
    for kind, expected in (("openai", KEEPALIVE_OPENAI), ("sglang", 30.0)):
        client = HttpEngineClient(EngineSpec("http://127.0.0.1:1", kind), settings)
        try:
            connector = client._session.connector
            assert connector is not None
            assert connector._keepalive_timeout == expected  # type: ignore[attr-defined]
        finally:
            await client.close()
    assert KEEPALIVE_OPENAI < 5.0


class _ClosingServer:
    """An OpenAI-compatible engine on a real socket that answers the first request of each
    connection and drops the connection at the next one, as a server does with a kept
    connection it has closed on its side (``always``: it drops every request)."""

    ANSWER = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":'
              b'[{"index":0,"message":{"role":"assistant","content":"hi"},'
              b'"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,'
              b'"total_tokens":3}}')

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.connections = 0
        self.requests = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                await reader.readexactly(length[0] if length else 0)
                self.requests += 1
                if served or self.always:
                    return  # closed without an answer
                served += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(self.ANSWER) + self.ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_request_on_a_connection_the_engine_closed_is_sent_again_once() -> None:
    from lkn.config import EngineSpec, Settings

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    closing = _ClosingServer()
    async with closing as url:
        client = EngineClient(EngineSpec(url, "openai"), Settings())
        try:
            for n in range(3):  # each reuse of the kept connection is dropped, then resent
                result = await client.complete(Route.CHAT, dict(body), f"rid-{n}")
                assert result is not None
        finally:
            await client.close()
        assert closing.requests == 5 and closing.connections == 3
    always = _ClosingServer(always=True)
    async with always as url:
        client = EngineClient(EngineSpec(url, "openai"), Settings())
        try:
            with pytest.raises(EngineError, match="before answering"):
                await client.complete(Route.CHAT, dict(body), "rid-x")
        finally:
            await client.close()
        # Its first request went out on a new connection: the engine's failure, not resent.
        assert always.requests == 1
