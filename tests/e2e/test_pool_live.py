"""A pool of two real engines side by side: SGLang (CPU) and llama.cpp (OpenAI-compatible).

Traffic is spread over both; when one is killed the other keeps serving, and no request
that had not yet sent a byte to its client is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.livestack import LiveEngine, LiveGateway, ready_gateway

pytestmark = pytest.mark.e2e

ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def pool_gateway(live_sglang: LiveEngine, live_llamacpp: LiveEngine,
                 live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(f"{live_sglang.url},openai={live_llamacpp.url}",
                       live_dir / "pool-gateway", LKN_READ_TIMEOUT="180") as gw:
        yield gw


async def test_both_engines_serve_and_report_through_one_api(pool_gateway: LiveGateway) -> None:
    engines: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        async with http.get(pool_gateway.url + "/ready") as r:
            kinds = {e["engine"]: e["ready"] for e in (await r.json())["engines"]}
        assert len(kinds) == 2 and all(kinds.values())
        for stream in (False, True) * 4:
            body = {"model": "SmolLM2-135M-Instruct", "messages": ASK, "max_tokens": 8,
                    "stream": stream, "stream_options": {"include_usage": True}}
            async with http.post(pool_gateway.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
                engines[r.headers["X-LKN-Engine"]] += 1
                raw = await r.read()
            if stream:
                assert raw.rstrip().endswith(b"data: [DONE]") and b'"usage"' in raw
            else:
                assert json.loads(raw)["choices"][0]["message"]["content"]
    assert len(engines) == 2 and min(engines.values()) >= 2, engines


async def _one(http: aiohttp.ClientSession, url: str, stream: bool) -> dict[str, Any]:
    body = {"model": "SmolLM2-135M-Instruct", "messages": ASK, "max_tokens": 48,
            "ignore_eos": True, "stream": stream}
    async with http.post(url + "/v1/chat/completions", json=body) as r:
        raw = await r.read()
        return {"status": r.status, "engine": r.headers.get("X-LKN-Engine"), "raw": raw,
                "stream": stream}


async def _in_flight(http: aiohttp.ClientSession, url: str, engine: str) -> int:
    async with http.get(url + "/ready") as r:
        return int({e["engine"]: e["in_flight"] for e in (await r.json())["engines"]}[engine])


# Twelve 48-token answers on two CPU engines: minutes on two busy cores, so the limits are
# generous; what is checked is that nothing is lost, not how fast it goes.
@pytest.mark.timeout(1200)
async def test_killing_one_engine_loses_no_request_that_had_not_started(
    pool_gateway: LiveGateway, live_llamacpp: LiveEngine
) -> None:
    llama = live_llamacpp.url.split("//")[1]
    # An engine is named by its place in LKN_ENGINE_URLS (X-LKN-Engine, /ready), not its address.
    public = {url.split("//")[1]: f"engine-{place}"
              for place, url in enumerate(pool_gateway.engine_urls.split(","), start=1)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
        tasks = [asyncio.create_task(_one(http, pool_gateway.url, i % 2 == 0)) for i in range(12)]
        deadline = asyncio.get_running_loop().time() + 60
        while await _in_flight(http, pool_gateway.url, public[llama]) == 0:
            # The kill must hit requests in flight on llama.cpp.
            assert asyncio.get_running_loop().time() < deadline, "llama.cpp never got a request"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(live_llamacpp.kill)
        results = await asyncio.gather(*tasks)
        # After the kill, new traffic all goes to SGLang.
        after = await asyncio.gather(*(_one(http, pool_gateway.url, s) for s in (False, True)))
    for result in results + list(after):
        # Nothing failed before its first byte: every answer started (HTTP 200).
        assert result["status"] == 200, result
        if not result["stream"]:
            assert json.loads(result["raw"])["choices"][0]["message"]["content"], result
        else:
            raw = result["raw"].rstrip()
            assert raw.endswith(b"data: [DONE]"), result
            if b'"error"' in raw:
                # Cut after its first byte: said so, never a clean end.
                assert result["engine"] == public[llama]
                assert b'"finish_reason":"stop"' not in raw and b'"finish_reason":"length"' not in raw
    assert {r["engine"] for r in after} == {"engine-1"}
    cut = [r for r in results if r["stream"] and b'"error"' in r["raw"]]
    async with aiohttp.ClientSession() as http:
        async with http.get(pool_gateway.url + "/metrics") as r:
            metrics = await r.text()
    retried = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("lkn_engine_retries_total"))
    # Requests cut on llama.cpp were either retried on SGLang (no byte sent yet) or, once
    # streaming, ended with an error event: at least one of the two happened.
    assert retried + len(cut) >= 1
    await asyncio.to_thread(live_llamacpp.start)
