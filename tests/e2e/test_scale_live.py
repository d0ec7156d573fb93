"""More than one live SGLang engine: SGLang's router in front of two workers, and an answer
that survives the engine serving it (LKN_RESUME).

Workers: the session's engine (``live_sglang``, never killed here) and a second SGLang CPU
engine of this module, which the last tests kill with SIGKILL. The router is the real
``sglang-router`` (scripts/start_router.sh), round-robin, so both workers serve.

The kill waits for what it looks up: the streams under test are on the second worker (the
gateway names the engine in ``X-LKN-Engine``), the greedy answer has reached the client's
5th token and cannot have finished (``ignore_eos``: it runs its whole budget), and the
routed streams have started. Each run's resumed text, the survivor's uninterrupted greedy
answer and whether they are equal go to ``artifacts/scale-resume.jsonl``.
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
    ROOT,
    LiveEngine,
    LiveGateway,
    free_port,
    get_json,
    ready_gateway,
    run_script,
    script_env,
)

#: Two SGLang engines on two shared cores: a token can take seconds, a readiness check or a
#: health check tens of seconds (others' engines on the same cores); every wait is long.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
#: Readiness checks of the gateways under test: slow answers are not failures here.
PATIENT = {"LKN_HEALTH_TIMEOUT": "30"}

MODEL = "SmolLM2-135M-Instruct"
#: A greedy answer that runs its whole budget (no early end of turn), so that a kill after
#: its 5th token always lands mid-answer, however slow the machine.
GREEDY = {
    "model": MODEL, "stream": True, "temperature": 0, "max_tokens": 48, "ignore_eos": True,
    "messages": [{"role": "user", "content": "Name the planets of the solar system and say "
                                             "one thing about each."}],
}
RESULTS = ROOT / "artifacts" / "scale-resume.jsonl"


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
                          ROUTER_PROMETHEUS_PORT=str(free_port()), ROUTER_START_TIMEOUT="300",
                          # Its 5 s health-check timeout marks a starved worker unhealthy.
                          ROUTER_EXTRA_ARGS="--health-check-timeout-secs 60")


@pytest.fixture(scope="module")
def worker(live_dir: Path) -> Iterator[LiveEngine]:
    """The second SGLang worker (killed by the last tests; stopped at the end)."""
    with LiveEngine("sglang", live_dir / "scale-worker").running(fresh=True) as engine:
        yield engine


@pytest.fixture(scope="module")
def router(live_sglang: LiveEngine, worker: LiveEngine, live_dir: Path) -> Iterator[LiveRouter]:
    log_dir = live_dir / "scale-router"
    log_dir.mkdir(parents=True, exist_ok=True)
    live = LiveRouter([live_sglang.url, worker.url], log_dir, free_port())
    run_script("start_router.sh", live.env(), 360)
    try:
        yield live
    finally:
        run_script("stop_router.sh", live.env(), 180)


@pytest.fixture(scope="module")
def routed(router: LiveRouter, live_dir: Path) -> Iterator[LiveGateway]:
    """A gateway whose only engine URL is the router."""
    with ready_gateway(router.url, live_dir / "scale-routed-gateway",
                       LKN_READ_TIMEOUT="60", LKN_MODE="passthrough", **PATIENT) as gw:
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


def finishes_of(events: list[Any]) -> list[Any]:
    return [c.get("finish_reason") for e in events if isinstance(e, dict)
            for c in e.get("choices") or () if c.get("finish_reason")]


# ---- the router in front ------------------------------------------------------------------


async def test_router_serves_generation_over_both_workers(
    routed: LiveGateway, live_sglang: LiveEngine, worker: LiveEngine
) -> None:
    before = [requests_served(live_sglang), requests_served(worker)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
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
                       LKN_DECISION_STRATEGY="entropy", LKN_PROBE_TIMEOUT="300",
                       **PATIENT) as gw:
        request = urllib.request.Request(
            gw.url + "/v1/lkn/probe", headers={"Content-Type": "application/json"},
            data=json.dumps(
                {"messages": [{"role": "user", "content": "Tell me a story."}]}).encode(),
        )
        with urllib.request.urlopen(request, timeout=400) as response:
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
        # 1500 tokens would take many minutes on these cores.
        assert time.monotonic() - started < 120, "the worker kept generating for a client that left"
        await asyncio.sleep(0.5)


# ---- one kill of the second worker, seen three ways -------------------------------------


@pytest.fixture(scope="module")
def resuming(live_sglang: LiveEngine, worker: LiveEngine, live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(f"{live_sglang.url},{worker.url}", live_dir / "scale-resume-on",
                       LKN_RESUME="true", LKN_MODE="passthrough", LKN_READ_TIMEOUT="60",
                       LKN_ENGINE_HEADER="address", **PATIENT) as gw:
        yield gw


@pytest.fixture(scope="module")
def not_resuming(live_sglang: LiveEngine, worker: LiveEngine,
                 live_dir: Path) -> Iterator[LiveGateway]:
    with ready_gateway(f"{live_sglang.url},{worker.url}", live_dir / "scale-resume-off",
                       LKN_MODE="passthrough", LKN_READ_TIMEOUT="60",
                       LKN_ENGINE_HEADER="address", **PATIENT) as gw:
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
        if response.headers["X-LKN-Engine"] == address(engine):
            return response
        response.close()
    raise AssertionError("the gateway never placed the stream on the second worker")


def address(engine: LiveEngine) -> str:
    """How the gateway names an engine (``LKN_ENGINE_HEADER=address``, logs)."""
    return engine.url.split("//")[1]


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
    reference = await asyncio.to_thread(_answer_of, request)

    failures_before = metric(routed.url, "lkn_engine_failures_total")
    # Four streams share two busy cores: a token can take a second or more.
    timeout = aiohttp.ClientTimeout(total=1500, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        on = Watched(await open_on(http, resuming, worker, GREEDY), [])
        off = Watched(await open_on(http, not_resuming, worker, GREEDY), [])
        # Behind the router: two streams, one per worker (round-robin), long enough to be
        # running at the kill.
        long_body = {**GREEDY, "max_tokens": 96}
        routed_streams = []
        for _ in range(2):
            routed_streams.append(Watched(
                await http.post(routed.url + "/v1/chat/completions", json=long_body), []))
        readers = [asyncio.create_task(read_into(w)) for w in (on, off, *routed_streams)]
        deadline = time.monotonic() + 600
        # After the 5th token of the two greedy answers (the routed ones only need to run).
        while min(on.content_chunks(), off.content_chunks()) < 5 or \
                min(w.content_chunks() for w in routed_streams) < 1:
            assert time.monotonic() < deadline, "the streams never got going"
            assert not any(r.done() for r in readers), "a stream ended before the kill"
            await asyncio.sleep(0.05)
        delivered_on = text_of(on.events)
        delivered_chunks = on.content_chunks()
        assert not finishes_of(on.events) and not finishes_of(off.events)
        await asyncio.to_thread(worker.kill)  # SIGKILL to the whole engine
        await asyncio.wait_for(asyncio.gather(*readers), 1200)

    # Resume on: one answer (one id, one finish, the whole budget), no error event, and it
    # is the survivor's greedy answer (or, if the two engines' numerics differ, at least it
    # starts with what was delivered and goes on).
    assert on.events[-1] == "[DONE]" and not errors_in(on.events), on.events[-3:]
    resumed = text_of(on.events)
    with RESULTS.open("a") as out:
        out.write(json.dumps({"delivered_chunks": delivered_chunks, "delivered": delivered_on,
                              "resumed": resumed, "reference": reference,
                              "equal": resumed == reference}) + "\n")
    assert resumed.startswith(delivered_on)
    assert len({e.get("id") for e in on.events if isinstance(e, dict)}) == 1
    assert finishes_of(on.events) == ["length"]
    if resumed != reference:
        print(f"resumed answer differs from the survivor's greedy run:\n{resumed!r}\n"
              f"{reference!r}")
    assert resumed == reference or len(resumed) > len(delivered_on)
    assert metric(resuming.url, 'lkn_stream_resumes_total{result="resumed"}') == 1
    # The engine killed was the one serving it, and the survivor took over.
    assert (f"engine={address(live_sglang)} failed_engine={address(worker)}"
            in resuming.log_text())

    # Resume off: today's behaviour, an error event then [DONE], never a clean finish.
    assert off.events[-1] == "[DONE]" and errors_in(off.events[-2:]), off.events[-3:]
    assert not finishes_of(off.events)

    # Behind the router the gateway has one engine and no other to continue on: the router
    # ends the stream that was on the killed worker, so the gateway's client gets the error
    # event; the other stream is untouched; the breaker counted that one failure.
    cut = [w for w in routed_streams if errors_in(w.events)]
    whole = [w for w in routed_streams if not errors_in(w.events)]
    assert len(cut) == 1 and len(whole) == 1, [w.events[-2:] for w in routed_streams]
    assert cut[0].events[-1] == "[DONE]" and whole[0].events[-1] == "[DONE]"
    assert finishes_of(whole[0].events) == ["length"] and not finishes_of(cut[0].events)
    assert metric(routed.url, "lkn_engine_failures_total") - failures_before == 1


async def test_the_router_retries_past_the_dead_worker_and_the_breaker_sees_nothing(
    routed: LiveGateway, worker: LiveEngine
) -> None:
    assert worker.pid_file.exists()  # killed above, not restarted
    failures = metric(routed.url, "lkn_engine_failures_total")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        for i in range(4):
            body = {"model": MODEL, "max_tokens": 4,
                    "messages": [{"role": "user", "content": f"Say {i}."}]}
            async with http.post(routed.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
    assert metric(routed.url, "lkn_engine_failures_total") == failures
    ready = get_json(routed.url + "/ready")
    assert isinstance(ready, dict) and all(e["ready"] for e in ready["engines"])


def _answer_of(request: urllib.request.Request) -> str:
    with urllib.request.urlopen(request, timeout=900) as response:
        return str(json.loads(response.read())["choices"][0]["message"]["content"])
