"""Client connections are bounded in time and number: trickling, idle and surplus connections
are closed within the configured limits, and counted."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

#: Slack for a busy machine on top of each configured timeout.
SLACK = 3.0


def port_of(gw: GatewayUnderTest) -> int:
    return int(gw.url.rsplit(":", 1)[1])


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(4096), limit):
        pass
    return time.monotonic() - started


async def metric(http: aiohttp.ClientSession, gw: GatewayUnderTest, line: str) -> float:
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    values = [float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line)]
    return sum(values)


@pytest.fixture
async def tight(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    return await start_gateway(make_settings(
        double.url, grpc_enabled=False, header_timeout=1.0, idle_timeout=1.5, body_timeout=1.0,
        max_connections=8,
    ))


async def test_a_client_trickling_its_headers_is_closed_after_the_header_timeout(
    tight: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(tight))
    started = time.monotonic()

    async def trickle() -> None:
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        for byte in head + b"a" * 100:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    sender = asyncio.ensure_future(trickle())
    try:
        await closed_after(reader, 1.0 + SLACK)
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started >= 0.9  # not before the timeout
    assert await metric(http, tight, 'lkn_http_connections_closed_total{reason="header_timeout"}') >= 1


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(tight))
    try:
        took = await closed_after(reader, 1.5 + SLACK)
    finally:
        writer.close()
    assert took >= 1.0


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(tight))
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    try:
        took = await closed_after(reader, 1.5 + SLACK)
    finally:
        writer.close()
    assert took >= 1.0


async def test_a_body_that_does_not_arrive_gets_a_408(tight: GatewayUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(tight))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0 + SLACK)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408")


async def test_connections_above_the_cap_are_closed_and_the_gateway_still_serves(
    tight: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port_of(tight)) for _ in range(8)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(tight))
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed, not answered
        writer.close()
    finally:
        for _, w in held:
            w.close()
    await asyncio.sleep(0.2)
    assert await metric(http, tight, 'lkn_http_connections_closed_total{reason="limit"}') == 1
    async with http.get(tight.url + "/health") as r:
        assert r.status == 200
    assert await metric(http, tight, "lkn_http_connections_open ") >= 1
