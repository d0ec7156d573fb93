"""The request lifecycle against in-process engines: one outcome per request, classified once,
counted once, logged once with its engine; streams never end silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lkn.breaker import BreakerState
from lkn.errors import (
    EngineError,
    EngineOverloaded,
    EngineRateLimited,
    EngineTimeout,
    TooManyRequests,
)
from lkn.gateway import Gateway
from lkn.outcome import Kind, classify
from lkn.client_request import parse_request
from lkn.rest import create_app
from lkn.values import GenerateRequest, Route
from tests.conftest import make_settings
from tests.fake_engine import FakeClock, FakeEngine, Step, fake_gateway
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

HELLO = [{"role": "user", "content": "hello there"}]


def req(stream: bool = False, model: str | None = None, rid: str = "r" * 32,
        timeout: float | None = None) -> GenerateRequest:  # fmt: skip
    body: dict[str, Any] = {"messages": HELLO, "stream": stream}
    if model is not None:
        body["model"] = model
    return parse_request(Route.CHAT, body, rid, timeout=timeout)


def gateway_of(*engines: FakeEngine, **settings: Any) -> Gateway:
    gw = fake_gateway(make_settings("http://127.0.0.1:1", **settings), engines, FakeClock())
    for engine in gw.pool.engines:
        gw.pool.record_check(engine, True)
    return gw


def counted(gw: Gateway, outcome: str, frontend: str = "rest", route: str = "chat") -> float:
    value = gw.metrics.registry.get_sample_value(
        "lkn_requests_total", {"frontend": frontend, "route": route, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(gw: Gateway) -> str:
        runner = web.AppRunner(create_app(gw), handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


# ---- the outcome table ----------------------------------------------------------------


@pytest.mark.parametrize("error, kind, status", [
    (None, Kind.SUCCESS, "200"),
    (asyncio.CancelledError(), Kind.CLIENT_GONE, "499"),
    (ConnectionResetError(), Kind.CLIENT_GONE, "499"),
    (EngineOverloaded("full", upstream_status=503), Kind.OVERLOAD, "503"),
    (EngineRateLimited("slow down", upstream_status=429), Kind.OVERLOAD, "429"),
    (TooManyRequests("limit"), Kind.OVERLOAD, "429"),
    (EngineError("reset"), Kind.ENGINE_FAILURE, "502"),
    (EngineTimeout("slow"), Kind.ENGINE_FAILURE, "504"),
    (ValueError("bug"), Kind.BUG, "500"),
])  # fmt: skip
def test_every_ending_has_one_kind_and_status(error: BaseException | None, kind: Kind,
                                              status: str) -> None:  # fmt: skip
    outcome = classify(error)
    assert (outcome.kind, outcome.status) == (kind, status)


def test_a_cancellation_after_the_deadline_is_a_deadline_not_a_client_gone() -> None:
    outcome = classify(asyncio.CancelledError(), deadline_passed=True)
    assert outcome.kind is Kind.DEADLINE and outcome.status == "504"


# ---- one lifecycle for every shape ------------------------------------------------------


async def test_a_stream_is_served_counted_and_logged_once_with_its_engine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = gateway_of(FakeEngine("a:1"))
    caplog.set_level(logging.INFO, logger="lkn.gateway")
    async with gw.stream(req(stream=True)) as answer:
        texts = [chunk.text async for chunk in answer]
    assert texts == ["w0 ", "w1 ", "w2 "] and answer.finish_reason == "stop"
    assert counted(gw, "200") == 1 and gw.active == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "lkn.gateway"]
    assert len(lines) == 1 and "engine=a:1" in lines[0] and "status=200" in lines[0]


async def test_a_failure_log_line_names_the_engine_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = gateway_of(FakeEngine("a:1", steps=[Step(error=EngineError("boom", engine="a:1"))]))
    caplog.set_level(logging.INFO, logger="lkn.gateway")
    with pytest.raises(EngineError):
        async with gw.complete(req()):
            pass
    (line,) = [r.getMessage() for r in caplog.records if r.name == "lkn.gateway"]
    assert "engine=a:1" in line and "status=502" in line and "outcome=engine_failure" in line


async def test_a_stream_that_ends_without_a_finish_reason_is_a_broken_stream() -> None:
    engine = FakeEngine("a:1", steps=[Step(finish=None)])
    gw = gateway_of(engine)
    texts = []
    with pytest.raises(EngineError, match="without a finish reason"):
        async with gw.stream(req(stream=True)) as answer:
            async for chunk in answer:
                texts.append(chunk.text)
    assert texts == ["w0 ", "w1 ", "w2 "]
    assert counted(gw, "502") == 1 and counted(gw, "200") == 0
    assert gw.pool.engines[0].breaker.consecutive_failures == 1


async def test_an_abandoned_engine_stream_is_closed_so_the_engine_is_told() -> None:
    engine = FakeEngine("a:1", steps=[Step(tokens=5)])
    gw = gateway_of(engine)
    async with gw.stream(req(stream=True)) as answer:
        async for _ in answer:
            break
    assert engine.aborts == ["r" * 32]
    assert counted(gw, "200") == 1  # the client chose to stop reading: nothing failed


async def test_probe_requests_count_against_the_concurrency_limit() -> None:
    gw = gateway_of(FakeEngine("a:1"), max_concurrency=1)
    hold = asyncio.Event()
    gw.pool.engines[0].client.steps.append(Step(hold=hold))  # type: ignore[attr-defined]
    first = asyncio.ensure_future(gw.complete(req()).__aenter__())
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests):
        async with gw.decision_only(req()):
            pass
    assert counted(gw, "429", route="probe") == 1
    hold.set()
    exchange = await first
    await exchange.__aexit__(None, None, None)


async def test_a_failed_probe_counts_against_the_engine_and_a_timeout_does_not() -> None:
    engine = FakeEngine("a:1", probe_error=EngineError("probe 500", engine="a:1"))
    gw = gateway_of(engine, decision={"strategy": "entropy"}, breaker_failures=5)
    async with gw.decision_only(req()) as answer:
        assert answer.decision.fallback is not None
    assert gw.pool.engines[0].breaker.consecutive_failures == 1
    engine.probe_error = EngineTimeout("probe slow", engine="a:1")
    async with gw.decision_only(req()):
        pass
    assert gw.pool.engines[0].breaker.consecutive_failures == 1
    engine.probe_error = None
    async with gw.decision_only(req()):
        pass
    assert gw.pool.engines[0].breaker.consecutive_failures == 0


async def test_a_failed_probe_never_closes_a_half_open_breaker() -> None:
    engine = FakeEngine("a:1", probe_error=EngineError("probe 500", engine="a:1"))
    clock = FakeClock()
    gw = fake_gateway(make_settings("http://127.0.0.1:1", breaker_failures=1,
                                    decision={"strategy": "entropy"}), [engine], clock)
    gw.pool.record_check(gw.pool.engines[0], True)
    async with gw.decision_only(req()):
        pass
    breaker = gw.pool.engines[0].breaker
    assert breaker.state is BreakerState.OPEN
    clock.now += 31
    async with gw.decision_only(req()):
        pass
    assert breaker.state is BreakerState.OPEN


async def test_a_non_streamed_trial_is_confirmed_by_its_status_line() -> None:
    hold = asyncio.Event()
    engine = FakeEngine("a:1", steps=[Step(error=EngineError("x", engine="a:1")), Step(hold=hold)])
    clock = FakeClock()
    gw = fake_gateway(make_settings("http://127.0.0.1:1", breaker_failures=1), [engine], clock)
    gw.pool.record_check(gw.pool.engines[0], True)
    with pytest.raises(EngineError):
        async with gw.complete(req()):
            pass
    clock.now += 31
    trial = asyncio.ensure_future(_complete(gw))
    while engine.generations() < 2:
        await asyncio.sleep(0)
    # The engine answered 200 but is still sending the body: the breaker is closed already
    # and others are served at once, not kept waiting for the whole answer.
    assert gw.pool.engines[0].breaker.state is BreakerState.CLOSED
    assert await _complete(gw) == 200
    hold.set()
    assert await trial == 200


async def _complete(gw: Gateway) -> int:
    async with gw.complete(req()) as answer:
        assert answer.completion is not None
    return 200


async def test_engine_overload_answers_503_with_the_engines_retry_after_and_spares_the_breaker(
    serve: Any,
) -> None:
    steps = [Step(error=EngineOverloaded("queue full", engine="a:1", upstream_status=503,
                                         retry_after=7.0)) for _ in range(8)]  # fmt: skip
    gw = gateway_of(FakeEngine("a:1", steps=steps), breaker_failures=2)
    url = await serve(gw)
    async with aiohttp.ClientSession() as http:
        for _ in range(8):
            async with http.post(url + "/v1/chat/completions", json={"messages": HELLO}) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "7"
    assert gw.pool.engines[0].breaker.state is BreakerState.CLOSED
    assert counted(gw, "503") == 8


# ---- REST: what happens after the headers ----------------------------------------------


async def test_a_bug_after_the_headers_ends_the_stream_with_one_internal_error_event(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_of(FakeEngine("a:1", steps=[Step(bug=True)]))
    url = await serve(gw)
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        body = {"messages": HELLO, "stream": True}
        async with http.post(url + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            raw = await r.read()  # a corrupt chunked body would raise here
    events = [e for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert '"code": "internal_error"' in events[-2]
    assert sum('"error"' in e for e in events) == 1
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    assert counted(gw, "500") == 1 and counted(gw, "499") == 0


async def test_a_client_leaving_before_the_first_byte_is_counted_499_not_500(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hold = asyncio.Event()
    engine = FakeEngine("a:1", steps=[Step(hold=hold)])
    gw = gateway_of(engine)
    url = await serve(gw)
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        task = asyncio.ensure_future(http.post(url + "/v1/chat/completions",
                                               json={"messages": HELLO}))
        await wait_for(lambda: engine.calls)
        task.cancel()
    await wait_for(lambda: counted(gw, "499"))
    assert counted(gw, "499") == 1 and counted(gw, "500") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_leaving_mid_stream_is_499_without_a_traceback(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hold = asyncio.Event()
    engine = FakeEngine("a:1", steps=[Step(hold=hold, tokens=4)])
    gw = gateway_of(engine)
    url = await serve(gw)
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions",
                             json={"messages": HELLO, "stream": True}) as r:
            await r.content.readline()
    hold.set()
    await wait_for(lambda: counted(gw, "499"))
    assert counted(gw, "499") == 1 and gw.active == 0
    assert engine.aborts, "the engine is told to drop the request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_rejections_are_counted_and_logged(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway_of(FakeEngine("a:1"), api_key="k", max_body_bytes=2048)
    url = await serve(gw)
    caplog.set_level(logging.INFO, logger="lkn.gateway")
    key = {"Authorization": "Bearer k"}
    async with aiohttp.ClientSession() as http:
        chat = url + "/v1/chat/completions"
        async with http.post(chat, json={"messages": HELLO}) as r:
            assert r.status == 401
        async with http.post(chat, json={"messages": []}, headers=key) as r:
            assert r.status == 400
        async with http.post(chat, data=b"x" * 4096, headers=key) as r:
            assert r.status == 413
    for status in ("401", "400", "413"):
        assert counted(gw, status) == 1, status
    lines = [r.getMessage() for r in caplog.records if r.name == "lkn.gateway"]
    assert [line.split("status=")[1].split()[0] for line in lines] == ["401", "400", "413"]
