"""More than one live SGLang engine: SGLang's router in front of two workers, and an answer
that survives the engine serving it (LKN_RESUME).

Workers: the session's engine (``live_sglang``, never killed here) and a second SGLang CPU
engine of this module, which the last tests kill with SIGKILL. The router is the real
``sglang-router`` (scripts/start_router.sh), round-robin, so both workers serve.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.livestack import (
    LiveEngine,
    LiveGateway,
    free_port,
    get_json,
    ready_gateway,
    run_script,
    script_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

MODEL = "SmolLM2-135M-Instruct"
#: A request whose greedy answer runs for a few dozen tokens.
GREEDY = {
    "model": MODEL, "stream": True, "temperature": 0, "max_tokens": 60,
    "messages": [{"role": "user", "content": "Name the planets of the solar system and say "
                                             "one thing about each."}],
}


@dataclass
class LiveRouter:
    workers: list[str]
    log_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return script_env(self.log_dir, ROUTER_WORKER_URLS=",".join(self.workers),
                          ROUTER_PORT=str(self.port), ROUTER_POLICY="round_robin",
                          ROUTER_PROMETHEUS_PORT=str(free_port()), ROUTER_START_TIMEOUT="300")


@pytest.fixture(scope="module")
def worker(live_dir: Path) -> Iterator[LiveEngine]:
    """The second SGLang worker (killed by the last tests; stopped at the end)."""
    engine = LiveEngine("sglang", live_dir / "scale-worker")
    engine.log_dir.mkdir(parents=True, exist_ok=True)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def router(live_sglang: LiveEngine, worker: LiveEngine, live_dir: Path) -> Iterator[LiveRouter]:
    log_dir = live_dir / "scale-router"
    log_dir.mkdir(parents=True, exist_ok=True)
    live = LiveRouter([live_sglang.url, worker.url], log_dir, free_port())
    run_script("start_router.sh", live.env(), 360)
    try:
        yield live
    finally:
        run_script("stop_router.sh", live.env(), 60)


@pytest.fixture(scope="module")
def routed(router: LiveRouter, live_dir: Path) -> Iterator[LiveGateway]:
    """A gateway whose only engine URL is the router."""
    with ready_gateway(router.url, live_dir / "scale-routed-gateway",
                       LKN_READ_TIMEOUT="20", LKN_MODE="passthrough") as gw:
        yield gw


def metric(url: str, prefix: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix))


def requests_served(engine: LiveEngine) -> float:
    return metric(engine.url, "sglang:num_requests_total")


async def read_events(response: aiohttp.ClientResponse) -> list[Any]:
    events: list[Any] = []
    async for raw in response.content:
        line = raw.strip()
        if line.startswith(b"data: "):
            events.append("[DONE]" if line == b"data: [DONE]" else json.loads(line[6:]))
    return events


def text_of(events: list[Any]) -> str:
    return "".join((c.get("delta") or {}).get("content") or ""
                   for e in events if isinstance(e, dict) for c in e.get("choices") or ())


def errors_in(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, dict) and "error" in e]


# ---- the router in front ------------------------------------------------------------------


async def test_router_serves_generation_over_both_workers(
    routed: LiveGateway, live_sglang: LiveEngine, worker: LiveEngine
) -> None:
    before = [requests_served(live_sglang), requests_served(worker)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=240)) as http:
        for stream in (False, True, False, True):
            body: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "stream": stream,
                                    "messages": [{"role": "user", "content": "Name a colour."}]}
            if stream:  # the router refuses stream_options on a non-streamed request (400)
                body["stream_options"] = {"include_usage": True}
            async with http.post(routed.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
                if stream:
                    events = await read_events(r)
                    assert events[-1] == "[DONE]" and not errors_in(events)
                    assert any(isinstance(e, dict) and e.get("usage") for e in events)
                else:
                    assert (await r.json())["choices"][0]["message"]["content"]
    after = [requests_served(live_sglang), requests_served(worker)]
    assert all(a > b for a, b in zip(after, before)), (before, after)


def test_probe_logprobs_come_through_the_router(router: LiveRouter, live_dir: Path) -> None:
    with ready_gateway(router.url, live_dir / "scale-routed-probe",
                       LKN_DECISION_STRATEGY="entropy", LKN_PROBE_TIMEOUT="60") as gw:
        request = urllib.request.Request(
            gw.url + "/v1/lkn/probe", headers={"Content-Type": "application/json"},
            data=json.dumps({"messages": [{"role": "user", "content": "Tell me a story."}]}).encode(),
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            decision = json.loads(response.read())
    assert decision["fallback"] is None, decision
    assert len(decision["top_tokens"][0]) == 10
    assert 0.0 <= decision["entropies"][0] <= 1.0


async def test_a_client_leaving_aborts_the_worker_request_behind_the_router(
    routed: LiveGateway, live_sglang: LiveEngine, worker: LiveEngine
) -> None:
    engines = (live_sglang, worker)
    before = sum(metric(e.url, "sglang:num_aborted_requests_total") for e in engines)
    body = {"model": MODEL, "stream": True, "max_tokens": 1500, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Write a very long essay about rivers."}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(routed.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            for _ in range(5):
                await r.content.readline()
    started = time.monotonic()
    while sum(metric(e.url, "sglang:num_aborted_requests_total") for e in engines) <= before:
        # 1500 tokens would take well over a minute on these cores.
        assert time.monotonic() - started < 30, "the worker kept generating for a client that left"
        await asyncio.sleep(0.5)


# ---- one kill of the second worker, seen three ways -------------------------------------


@pytest.fixture(scope="module")
def resuming(live_sglang: LiveEngine, worker: LiveEngine, live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(f"{live_sglang.url},{worker.url}", live_dir / "scale-resume-on",
                       LKN_RESUME="true", LKN_MODE="passthrough", LKN_READ_TIMEOUT="60",
                       LKN_ENGINE_HEADER="address") as gw:
        yield gw


@pytest.fixture(scope="module")
def not_resuming(live_sglang: LiveEngine, worker: LiveEngine,
                 live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(f"{live_sglang.url},{worker.url}", live_dir / "scale-resume-off",
                       LKN_MODE="passthrough", LKN_READ_TIMEOUT="60",
                       LKN_ENGINE_HEADER="address") as gw:
        yield gw


@dataclass
class Watched:
    response: aiohttp.ClientResponse
    events: list[Any]

    def content_chunks(self) -> int:
        return sum(1 for e in self.events if isinstance(e, dict) and text_of([e]))


async def open_on(http: aiohttp.ClientSession, gateway: LiveGateway, engine: LiveEngine,
                  body: dict[str, Any]) -> aiohttp.ClientResponse:
    """A stream the gateway placed on ``engine`` (ties go round-robin: a few tries)."""
    for _ in range(6):
        response = await http.post(gateway.url + "/v1/chat/completions", json=body)
        assert response.status == 200, await response.text()
        if response.headers["X-LKN-Engine"] == engine.url.split("//")[1]:
            return response
        response.close()
    raise AssertionError("the gateway never placed the stream on the second worker")


async def read_into(watched: Watched) -> None:
    async for raw in watched.response.content:
        line = raw.strip()
        if line.startswith(b"data: "):
            watched.events.append("[DONE]" if line == b"data: [DONE]" else json.loads(line[6:]))


async def test_killing_the_engine_mid_answer_resume_on_off_and_behind_the_router(
    resuming: LiveGateway, not_resuming: LiveGateway, routed: LiveGateway,
    live_sglang: LiveEngine, worker: LiveEngine,
) -> None:
    # The uninterrupted greedy answer of the surviving engine, for comparison.
    reference_body = {**GREEDY, "stream": False}
    request = urllib.request.Request(live_sglang.url + "/v1/chat/completions",
                                     data=json.dumps(reference_body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=240) as response:
        reference = json.loads(response.read())["choices"][0]["message"]["content"]

    failures_before = metric(routed.url, "lkn_engine_failures_total")
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        on = Watched(await open_on(http, resuming, worker, GREEDY), [])
        off = Watched(await open_on(http, not_resuming, worker, GREEDY), [])
        # Behind the router: a long stream; keep the one the router gave the second worker.
        long_body = {**GREEDY, "max_tokens": 400, "ignore_eos": True}
        routed_streams = []
        for _ in range(2):
            routed_streams.append(Watched(
                await http.post(routed.url + "/v1/chat/completions", json=long_body), []))
        readers = [asyncio.create_task(read_into(w)) for w in (on, off, *routed_streams)]
        deadline = time.monotonic() + 120
        # After the 5th token of the two greedy answers (the routed ones only need to run).
        while min(on.content_chunks(), off.content_chunks()) < 5 or \
                min(w.content_chunks() for w in routed_streams) < 1:
            assert time.monotonic() < deadline, "the streams never got going"
            await asyncio.sleep(0.05)
        delivered_on = text_of(on.events)
        await asyncio.to_thread(worker.kill)  # SIGKILL to the whole engine
        await asyncio.wait_for(asyncio.gather(*readers), 240)

    # Resume on: one answer, no error event, and it is the survivor's greedy answer (or, if
    # the two engines' numerics differ, at least it starts with what was delivered).
    assert on.events[-1] == "[DONE]" and not errors_in(on.events), on.events[-3:]
    resumed = text_of(on.events)
    assert resumed.startswith(delivered_on)
    finishes = [c.get("finish_reason") for e in on.events if isinstance(e, dict)
                for c in e.get("choices") or () if c.get("finish_reason")]
    assert finishes and finishes[-1] in ("stop", "length")
    if resumed != reference:
        print(f"resumed answer differs from the survivor's greedy run:\n{resumed!r}\n"
              f"{reference!r}")
    assert resumed == reference or len(resumed) > len(delivered_on)
    assert metric(resuming.url, 'lkn_stream_resumes_total{result="resumed"}') == 1

    # Resume off: today's behaviour, an error event then [DONE], never a clean finish.
    assert off.events[-1] == "[DONE]" and errors_in(off.events[-2:]), off.events[-3:]
    assert not any(c.get("finish_reason") in ("stop", "length") for e in off.events
                   if isinstance(e, dict) for c in e.get("choices") or ())

    # Behind the router the gateway has one engine: the stream on the killed worker ends
    # with an error event (after LKN_READ_TIMEOUT of silence if the router holds it open),
    # the other stream is untouched, and the breaker counted at most that one failure.
    cut = [w for w in routed_streams if errors_in(w.events)]
    whole = [w for w in routed_streams if not errors_in(w.events)]
    assert len(cut) == 1 and len(whole) == 1, [w.events[-2:] for w in routed_streams]
    assert cut[0].events[-1] == "[DONE]" and whole[0].events[-1] == "[DONE]"
    assert metric(routed.url, "lkn_engine_failures_total") - failures_before == 1


async def test_the_router_retries_past_the_dead_worker_and_the_breaker_sees_nothing(
    routed: LiveGateway, worker: LiveEngine
) -> None:
    assert worker.pid_file.exists()  # killed above, not restarted
    failures = metric(routed.url, "lkn_engine_failures_total")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        for i in range(4):
            body = {"model": MODEL, "max_tokens": 4,
                    "messages": [{"role": "user", "content": f"Say {i}."}]}
            async with http.post(routed.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
    assert metric(routed.url, "lkn_engine_failures_total") == failures
    ready = get_json(routed.url + "/ready")
    assert isinstance(ready, dict) and all(e["ready"] for e in ready["engines"])
