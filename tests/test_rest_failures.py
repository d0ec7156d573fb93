"""Failure behaviour: breaker, retries before the first byte, mid-stream errors, aborts."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lkn.breaker import BreakerState
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.clock import FakeClock
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.test_rest_gateway import CHAT, content_of, sse_events
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

STREAM = {**CHAT, "max_tokens": 12, "stream": True}




@pytest.fixture
async def pair() -> AsyncIterator[tuple[SGLangDouble, SGLangDouble]]:
    async with SGLangDouble() as a, SGLangDouble() as b:
        yield a, b


def gen_count(double: SGLangDouble) -> int:
    return len(double.requests_to("/v1/chat/completions"))


# ---- circuit breaker ------------------------------------------------------------------


async def test_breaker_opens_after_5_failures_and_rejects_without_calling_the_engine(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, breaker_reset=60.0,
                                           health_interval=60.0))
    double.script(*([Fault.HTTP_500] * 5))
    for i in range(5):
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 502, i
            assert (await r.json())["error"]["type"] == "engine_error"
    engine = gw.gateway.pool.engines[0]
    assert engine.breaker.state is BreakerState.OPEN
    assert gen_count(double) == 5
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 503
        retry_after = int(r.headers["Retry-After"])
        error = (await r.json())["error"]
    assert 1 <= retry_after <= 60
    assert error["type"] == "engine_unavailable" and "retry" in error["message"]
    assert gen_count(double) == 5, "an open breaker must not call the engine"
    async with http.get(gw.url + "/ready") as r:
        assert r.status == 503
    async with http.get(gw.url + "/metrics") as r:
        assert f'lkn_engine_breaker_state{{engine="{engine.name}"}} 2.0' in await r.text()


async def _trip(gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession,
                clock: FakeClock, failures: int = 2) -> None:
    double.script(*([Fault.HTTP_500] * failures))
    for _ in range(failures):
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 502
    breaker = gw.gateway.pool.engines[0].breaker
    assert breaker.state is BreakerState.OPEN
    clock.advance(gw.settings.breaker_reset + 0.001)
    assert breaker.state is BreakerState.HALF_OPEN


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with http.post(url, json=body) as r:
        return r.status, await r.read()


async def test_half_open_lets_exactly_one_trial_through_then_closes(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        # Without the loop guard a non-streamed answer is one engine request whose status
        # line comes with the whole answer (under the guard it is read as a stream, and its
        # first chunk confirms the trial, as a streamed trial's does: the test below).
        clock = FakeClock()
        gw = await start_gateway(
            make_settings(double.url, grpc_enabled=False, breaker_reset=0.3, breaker_failures=2,
                          health_interval=60.0, loop_guard=False), clock)
        await _trip(gw, double, http, clock)
        breaker = gw.gateway.pool.engines[0].breaker
        before = gen_count(double)
        body = {**CHAT, "max_tokens": 6}
        trial = asyncio.create_task(_post(http, gw.v1 + "/chat/completions", body))
        await wait_for(lambda: gen_count(double) == before + 1)
        # Requests arriving during the trial wait for its outcome; none reaches the engine.
        waiting = [asyncio.create_task(_post(http, gw.v1 + "/chat/completions", body))
                   for _ in range(3)]
        await wait_for(lambda: gw.gateway.pool.waiting_for_trial == 3)
        assert gen_count(double) == before + 1 and not any(t.done() for t in waiting)
        assert (await trial)[0] == 200
        assert breaker.state is BreakerState.CLOSED
        assert [(await t)[0] for t in waiting] == [200, 200, 200]
        assert gen_count(double) == before + 4


async def test_a_streamed_trial_proves_the_engine_at_its_first_byte(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        clock = FakeClock()
        gw = await start_gateway(
            make_settings(double.url, grpc_enabled=False, breaker_reset=0.3, breaker_failures=2,
                          health_interval=60.0), clock)
        await _trip(gw, double, http, clock)
        async with http.post(gw.v1 + "/chat/completions",
                             json={**STREAM, "max_tokens": 40}) as trial:
            await trial.content.readline()
            # The trial is still streaming (2 s), but the breaker is closed already.
            assert gw.gateway.pool.engines[0].breaker.state is BreakerState.CLOSED
            assert (await _post(http, gw.v1 + "/chat/completions",
                                {**CHAT, "max_tokens": 4}))[0] == 200
            events = await sse_events(trial)
        assert events[-1] == "[DONE]"


async def test_requests_waiting_on_a_failed_trial_get_503_without_reaching_the_engine(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        clock = FakeClock()
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False, breaker_reset=0.3, breaker_failures=2,
            read_timeout=0.5, health_interval=60.0,
        ), clock)
        await _trip(gw, double, http, clock)
        before = gen_count(double)
        double.script(Fault.STALL)  # the trial hangs, then times out
        trial = asyncio.create_task(_post(http, gw.v1 + "/chat/completions", CHAT))
        await wait_for(lambda: gen_count(double) == before + 1)
        waiting = [asyncio.create_task(_post(http, gw.v1 + "/chat/completions", CHAT))
                   for _ in range(2)]
        await wait_for(lambda: gw.gateway.pool.waiting_for_trial == 2)
        assert not any(t.done() for t in waiting), "they wait for the trial's outcome"
        assert (await trial)[0] == 504
        assert [(await t)[0] for t in waiting] == [503, 503]
        assert gen_count(double) == before + 1


async def test_with_no_trial_wait_others_are_turned_away_at_once(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        clock = FakeClock()
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False, breaker_reset=0.3, breaker_failures=2,
            breaker_trial_wait=0.0, health_interval=60.0,
        ), clock)
        await _trip(gw, double, http, clock)
        before = gen_count(double)
        trial = asyncio.create_task(_post(http, gw.v1 + "/chat/completions",
                                          {**CHAT, "max_tokens": 6}))
        await wait_for(lambda: gen_count(double) == before + 1)
        for _ in range(3):
            assert (await _post(http, gw.v1 + "/chat/completions", CHAT))[0] == 503
        assert (await trial)[0] == 200
        assert gen_count(double) == before + 1


async def test_failed_trial_reopens(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gw = await start_gateway(
        make_settings(double.url, grpc_enabled=False, breaker_reset=0.2, breaker_failures=1,
                      health_interval=60.0), clock)
    double.script(Fault.HTTP_500, Fault.HTTP_500)
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 502
    breaker = gw.gateway.pool.engines[0].breaker
    clock.advance(0.201)
    assert breaker.state is BreakerState.HALF_OPEN
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 502
    assert breaker.state is BreakerState.OPEN


async def test_client_cancellations_never_count_as_failures(
    start_gateway: GatewayFactory,
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False, breaker_failures=2))
        for _ in range(4):
            async with aiohttp.ClientSession() as s:
                async with s.post(gw.v1 + "/chat/completions", json=STREAM) as r:
                    await r.content.readline()
        await wait_for(lambda: gw.gateway.active == 0)
        assert gw.gateway.pool.engines[0].breaker.state is BreakerState.CLOSED
        assert gw.gateway.pool.engines[0].breaker.consecutive_failures == 0


# ---- retries before the first byte ----------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.HTTP_500, Fault.HTTP_503, Fault.DROP_BEFORE])
async def test_failure_before_first_byte_is_retried_on_another_engine(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession, fault: Fault,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    for stream in (False, True):
        a.script(fault)
        # Round-robin: one of two requests goes to the faulty engine first.
        for _ in range(2):
            body = {**CHAT, "stream": stream}
            async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                assert r.status == 200
                if stream:
                    events = await sse_events(r)
                    assert events[-1] == "[DONE]" and content_of(events)
                else:
                    assert (await r.json())["choices"][0]["message"]["content"]
    # Each fault cost one extra attempt: exactly one retry each time, on the other engine,
    # or for a dropped kept connection a resend on a new one.
    assert gen_count(a) + gen_count(b) == 6
    resends = sum(e.client.resends for e in gw.gateway.pool.engines)
    assert resends == 0 or fault is Fault.DROP_BEFORE
    async with http.get(gw.url + "/metrics") as r:
        metrics = await r.text()
    retries = re.search(r"^lkn_engine_retries_total (\S+)$", metrics, re.M)
    assert (float(retries.group(1)) if retries else 0.0) + resends == 2


async def test_only_one_retry_then_the_mapped_error(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    a.script(Fault.HTTP_503)
    b.script(Fault.HTTP_503)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        assert r.status == 503
        assert (await r.json())["error"]["type"] == "engine_unavailable"
    assert gen_count(a) + gen_count(b) == 2


async def test_engine_4xx_is_not_retried(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    a.script(Fault.HTTP_400)
    b.script(Fault.HTTP_400)
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 400
    assert gen_count(a) + gen_count(b) == 1


async def test_stall_before_first_byte_times_out_as_504(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, read_timeout=0.3))
    double.script(Fault.STALL, Fault.STALL)
    for body in (CHAT, STREAM):
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 504
            assert (await r.json())["error"]["type"] == "timeout"
    await wait_for(lambda: len(double.aborts) == 2)


async def test_engine_unreachable_is_503(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings("http://127.0.0.1:9", grpc_enabled=False))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 503
        assert r.headers.get("Retry-After")
        assert (await r.json())["error"]["message"]
    async with http.get(gw.url + "/ready") as r:
        assert r.status == 503


async def test_traffic_is_spread_and_a_dead_engine_is_skipped(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    for _ in range(10):
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 200
    assert gen_count(a) == gen_count(b) == 5
    a.ready = False
    await wait_for(lambda: gw.gateway.pool.engines[0].ready is False)
    for _ in range(4):
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 200
    assert gen_count(a) == 5 and gen_count(b) == 9


# ---- after the first byte -------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.DROP_MID_STREAM, Fault.ERROR_EVENT, Fault.ABORT_503])
async def test_mid_stream_failure_is_one_error_event_then_done(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession, fault: Fault,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    a.script(fault)
    b.script(fault)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        assert r.status == 200
        events = await sse_events(r)
    assert events[-1] == "[DONE]"
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and errors[0]["error"]["message"]
    assert events[-2] is errors[0]
    assert content_of(events), "the partial answer before the failure is kept"
    finishes = [c.get("finish_reason") for e in events if isinstance(e, dict)
                for c in e.get("choices", [])]
    assert not any(finishes), "a failed stream must not look complete"
    assert gen_count(a) + gen_count(b) == 1, "never a retry after the first byte"


async def test_stall_mid_stream_ends_with_an_error_event(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, read_timeout=0.3))
    double.script(Fault.STALL_MID_STREAM)
    async with http.post(gw.v1 + "/chat/completions", json=STREAM) as r:
        events = await sse_events(r)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["type"] == "timeout"
    rid = r.headers["X-Request-Id"]
    await wait_for(lambda: rid in double.aborts)


async def test_client_disconnect_mid_stream_aborts_the_engine_request(
    start_gateway: GatewayFactory,
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
        async with aiohttp.ClientSession() as s:
            async with s.post(gw.v1 + "/chat/completions",
                              json={**STREAM, "max_tokens": 200}) as r:
                rid = r.headers["X-Request-Id"]
                await r.content.readline()
        await wait_for(lambda: rid in double.aborts)
        await wait_for(lambda: rid not in double.live_rids)
        await wait_for(lambda: gw.gateway.active == 0)
        assert gw.gateway.pool.engines[0].in_flight == 0


async def test_client_disconnect_non_streaming_aborts_too(
    start_gateway: GatewayFactory,
) -> None:
    async with SGLangDouble(token_delay=0.05) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
        async with aiohttp.ClientSession() as s:
            with pytest.raises(asyncio.TimeoutError):
                await s.post(gw.v1 + "/chat/completions", json={**CHAT, "max_tokens": 200},
                             timeout=aiohttp.ClientTimeout(total=0.3))
        await wait_for(lambda: len(double.aborts) == 1)
        rid = double.requests_to("/v1/chat/completions")[0].body["rid"]
        assert double.aborts == [rid]
        await wait_for(lambda: gw.gateway.active == 0)


async def test_nothing_hangs_under_mixed_faults(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False, read_timeout=0.5,
                                           breaker_failures=1000))
    faults = [Fault.HTTP_500, Fault.DROP_BEFORE, Fault.DROP_MID_STREAM, Fault.ERROR_EVENT,
              Fault.STALL, Fault.ABORT_503, Fault.HTTP_503, Fault.SLOW]
    a.script(*faults)
    b.script(*reversed(faults))

    async def one(i: int) -> int:
        body = {**CHAT, "stream": i % 2 == 0, "max_tokens": 5}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            if r.headers.get("Content-Type", "").startswith("text/event-stream"):
                events = await sse_events(r)
                assert events[-1] == "[DONE]"
            else:
                json.loads(await r.read())
            return r.status

    statuses = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(24))), 20)
    assert set(statuses) <= {200, 400, 502, 503, 504}
    assert statuses.count(200) >= 8
    await wait_for(lambda: gw.gateway.active == 0)
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 200
