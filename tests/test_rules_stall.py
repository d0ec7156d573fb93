"""Hostile text does not freeze the gateway: while requests of 100 KB of newlines, digits and
spaces are decided, a concurrent stream's chunks keep coming (at most 50 ms later than the
same stream's chunks without them)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast

TOKEN_DELAY = 0.02
TOKENS = 60
HOSTILE = ("\n" * 100_000, "7" * 100_000, " " * 100_000, "\n \t9%" * 20_000)
#: What the issue allows: a concurrent stream is not delayed by more than this.
ALLOWED = 0.050


async def _longest_gap(http: aiohttp.ClientSession, url: str) -> float:
    """The longest wait between two chunks of one streamed answer."""
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": TOKENS, "ignore_eos": True, "stream": True}
    arrivals: list[float] = []
    async with http.post(url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        async for _ in r.content.iter_any():
            arrivals.append(time.monotonic())
    assert len(arrivals) > TOKENS // 2
    return max(b - a for a, b in zip(arrivals, arrivals[1:]))


async def _hostile(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> int:
    """Send the hostile texts for a decision, one after another, until ``stop``."""
    sent = 0
    while not stop.is_set():
        text = HOSTILE[sent % len(HOSTILE)]
        async with http.post(url + "/v1/lkn/probe",
                             json={"messages": [{"role": "user", "content": text}]}) as r:
            assert r.status == 200, await r.text()
            await r.read()
        sent += 1
    return sent


async def test_hostile_text_does_not_delay_a_concurrent_stream(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=TOKEN_DELAY) as double:
        gw = await start_gateway(make_settings(double.url))
        await _longest_gap(http, gw.url)  # warm: connections, first request's imports
        # A busy machine can add a scheduling hiccup to any one run: the best of five
        # runs is compared (a frozen loop, as quadratic rules caused, misses every time).
        extra: list[float] = []
        for _ in range(5):
            quiet = await _longest_gap(http, gw.url)
            stop = asyncio.Event()
            hostile = asyncio.create_task(_hostile(http, gw.url, stop))
            try:
                busy = await _longest_gap(http, gw.url)
            finally:
                stop.set()
                sent = await hostile
            assert sent >= 3, "the hostile requests did not overlap the stream"
            extra.append(busy - quiet)
            if extra[-1] <= ALLOWED:
                break
        assert min(extra) <= ALLOWED, f"stream delayed by {[round(e * 1000) for e in extra]} ms"
