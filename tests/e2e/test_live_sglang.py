"""End to end against a live SGLang engine on the CPU (SmolLM2-135M-Instruct).

The engine is real (scheduler, radix cache, OpenAI and native surfaces); the gateway runs
as its own process, as in production. The tests that kill the engine come last and leave
it running again.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.livestack import (
    LiveEngine,
    LiveGateway,
    get_json,
    http_status,
    ready_gateway,
    wait_status,
)

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def gateway(live_sglang: LiveEngine, live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(live_sglang.url, live_dir / "e2e-gateway",
                       LKN_BREAKER_RESET="3", LKN_READ_TIMEOUT="120") as gw:
        yield gw


@pytest.fixture(scope="module")
def probing_gateway(live_sglang: LiveEngine, live_dir: Path) -> Iterator[LiveGateway]:
    """A second gateway on the same engine, deciding by the engine's own entropy."""
    with ready_gateway(live_sglang.url, live_dir / "e2e-gateway-hybrid",
                       LKN_DECISION_STRATEGY="hybrid", LKN_PROBE_TIMEOUT="20") as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0,
                       timeout=120) as c:
        yield c


def model_of(gateway: LiveGateway) -> str:
    data = get_json(gateway.url + "/v1/models")
    assert isinstance(data, dict)
    return str(data["data"][0]["id"])


def test_models_lists_the_served_model_and_its_mode_variants(gateway: LiveGateway) -> None:
    data = get_json(gateway.url + "/v1/models")
    assert isinstance(data, dict)
    ids = [m["id"] for m in data["data"]]
    assert ids == ["SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct+fluido",
                   "SmolLM2-135M-Instruct+analitico"]


@pytest.fixture(scope="module")
def engine_client(live_sglang: LiveEngine) -> Iterator[openai.OpenAI]:
    """The same SDK talking to SGLang directly: what the engine itself answers."""
    with openai.OpenAI(base_url=live_sglang.url + "/v1", api_key="unused", max_retries=0,
                       timeout=120) as c:
        yield c


def _streamed(stream: Any) -> tuple[str, Any, str | None]:
    text, usage, finish = "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, usage, finish


def _warm(engine_client: openai.OpenAI) -> None:
    # Both compared requests then find the prompt in SGLang's radix cache, so they run the
    # same computation (a cached and an uncached prefill can differ in the last bits).
    engine_client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=QUESTION,
                                          max_tokens=1, temperature=0)


def test_chat_non_streaming(client: openai.OpenAI, engine_client: openai.OpenAI,
                            gateway: LiveGateway) -> None:
    # A FLUIDO request reaches the engine unchanged: the gateway's greedy answer is the
    # engine's own for the same request (whatever a 135M model happens to say).
    _warm(engine_client)
    direct = engine_client.chat.completions.create(
        model="SmolLM2-135M-Instruct", messages=QUESTION, max_tokens=12, temperature=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model_of(gateway), messages=QUESTION, max_tokens=12, temperature=0
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].message.content == direct.choices[0].message.content
    assert reply.choices[0].finish_reason == direct.choices[0].finish_reason
    assert reply.usage is not None and direct.usage is not None
    assert reply.usage.prompt_tokens == direct.usage.prompt_tokens > 5
    assert raw.headers["x-lkn-mode"] == "FLUIDO"
    assert raw.headers["x-lkn-strategy"] == "rules"


def test_chat_streaming_with_usage(client: openai.OpenAI, engine_client: openai.OpenAI,
                                   gateway: LiveGateway) -> None:
    _warm(engine_client)
    options: dict[str, Any] = {"max_tokens": 12, "temperature": 0, "stream": True,
                               "stream_options": {"include_usage": True}}
    direct = _streamed(engine_client.chat.completions.create(
        model="SmolLM2-135M-Instruct", messages=QUESTION, **options))
    text, usage, finish = _streamed(client.chat.completions.create(
        model=model_of(gateway), messages=QUESTION, **options))
    assert text and text == direct[0]
    assert finish in ("stop", "length") and finish == direct[2]
    assert usage is not None and usage.completion_tokens == direct[1].completion_tokens > 0


def test_text_completion(client: openai.OpenAI, gateway: LiveGateway) -> None:
    reply = client.completions.create(model=model_of(gateway), prompt="One, two, three,",
                                      max_tokens=6, temperature=0)
    assert reply.choices[0].text.strip()


def _entropy(logprobs: list[float]) -> float:
    probs = [math.exp(lp) for lp in logprobs]
    total = sum(probs)
    probs = [p / total for p in probs]
    h = -sum(p * math.log2(p) for p in probs if p > 0)
    return h / math.log2(len(probs))


def test_probe_returns_real_top_k_logprobs_whose_entropy_we_recompute(
    probing_gateway: LiveGateway, live_sglang: LiveEngine
) -> None:
    body = {"messages": [{"role": "user", "content": "Tell me a story about a dragon."}]}
    request = urllib.request.Request(
        probing_gateway.url + "/v1/lkn/probe", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        decision = json.loads(response.read())
    assert decision["strategy"] == "hybrid" and decision["fallback"] is None
    tops = decision["top_tokens"][0]
    assert len(tops) == 10
    ours = _entropy([t["logprob"] for t in tops])
    assert decision["entropies"][0] == pytest.approx(ours, abs=1e-6)
    # Independently: ask the engine itself for the same distribution.
    direct = post_json(live_sglang.url + "/v1/chat/completions", {
        "model": "SmolLM2-135M-Instruct", **body, "max_tokens": 1, "temperature": 0,
        "logprobs": True, "top_logprobs": 10,
    })[1]
    engine_tops = direct["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert [t["token"] for t in engine_tops] == [t["token"] for t in tops]
    assert _entropy([t["logprob"] for t in engine_tops]) == pytest.approx(ours, abs=1e-3)
    assert decision["mode"] == ("ANALITICO" if ours > decision["threshold"] else "FLUIDO")


def running_requests(engine: LiveEngine) -> int:
    loads = get_json(engine.url + "/v1/loads")
    assert isinstance(loads, dict)
    return sum(int(entry["num_running_reqs"]) + int(entry.get("num_waiting_reqs", 0))
               for entry in loads["loads"])


def aborted_requests(engine: LiveEngine) -> float:
    """SGLang's own count of aborted requests (its Prometheus /metrics)."""
    for line in get_text(engine.url + "/metrics").splitlines():
        if line.startswith("sglang:num_aborted_requests_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_client_disconnect_makes_sglang_abort_the_request(
    gateway: LiveGateway, live_sglang: LiveEngine
) -> None:
    body: dict[str, Any] = {
        "model": model_of(gateway), "stream": True, "max_tokens": 1500, "temperature": 0.8,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a very long essay about the sea."}],
    }
    before = aborted_requests(live_sglang)
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            # /v1/loads is a periodic snapshot: read on until it shows our request running.
            deadline = time.monotonic() + 90
            while running_requests(live_sglang) != 1:
                assert time.monotonic() < deadline, "the engine never showed the request"
                await response.content.readline()
        # Leaving the block closes the connection mid-answer.
    started = time.monotonic()
    while aborted_requests(live_sglang) <= before or running_requests(live_sglang) != 0:
        # SGLang counts the request as aborted (a finished one is not counted), well before
        # the 1500 tokens could be done (over a minute and a half at ~15 tokens/s).
        assert time.monotonic() - started < 60, "SGLang kept generating for a client that left"
        time.sleep(0.25)


async def test_engine_killed_mid_stream_then_breaker_then_recovery(
    gateway: LiveGateway, live_sglang: LiveEngine
) -> None:
    body: dict[str, Any] = {
        "model": model_of(gateway), "stream": True, "max_tokens": 600, "ignore_eos": True,
        "messages": [{"role": "user", "content": "Write a long poem about mountains."}],
    }
    events: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            async for raw in response.content:
                line = raw.decode().strip()
                if not line:
                    continue
                events.append(line)
                if len(events) == 5:
                    await asyncio.to_thread(live_sglang.kill)
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][len("data: "):])
    assert "error" in error and error["error"]["message"]
    assert not any('"finish_reason":"stop"' in e or '"finish_reason":"length"' in e
                   for e in events), "a cut stream must not look complete"

    wait_status(gateway.url + "/ready", 503, 60)
    deadline = time.monotonic() + 60
    while "lkn_engine_breaker_state{" not in (metrics := _metrics(gateway)) or \
            _breaker(metrics) != 2.0:
        assert time.monotonic() < deadline, "the breaker did not open"
        time.sleep(0.3)
    status, refused, headers = post_json(gateway.url + "/v1/chat/completions",
                                         {"model": model_of(gateway), "messages": QUESTION},
                                         with_headers=True)
    assert status == 503 and headers["Retry-After"]
    assert refused["error"]["message"]

    await asyncio.to_thread(live_sglang.start)
    wait_status(gateway.url + "/ready", 200, 180)
    status, reply = post_json(gateway.url + "/v1/chat/completions",
                              {"model": model_of(gateway), "messages": QUESTION, "max_tokens": 8})
    assert status == 200, reply
    assert _breaker(_metrics(gateway)) == 0.0


def _metrics(gateway: LiveGateway) -> str:
    return get_text(gateway.url + "/metrics")


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def post_json(url: str, body: dict[str, Any], with_headers: bool = False) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            result = (response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as exc:
        result = (exc.code, json.loads(exc.read()), dict(exc.headers))
    return result if with_headers else result[:2]


def _breaker(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("lkn_engine_breaker_state{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no breaker metric")


def test_engine_is_running_after_the_module(live_sglang: LiveEngine) -> None:
    assert http_status(live_sglang.url + "/ready") == 200
