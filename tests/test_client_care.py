"""Care a client can ask for is allowed only where the operator says so, bounded, weighed
in admission by what it costs, and shed by the homeostat like the gateway's own care."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lkn.config import ClientLimits, HomeostatSettings
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import CARE_OPEN, GatewayFactory, GatewayUnderTest, make_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

HELLO = [{"role": "user", "content": "hello there"}]
CHAT = {"model": "smollm2", "messages": HELLO, "max_tokens": 8}


async def post(gw: GatewayUnderTest, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.v1 + "/chat/completions", json=body, headers=headers or {}) as r:
            return r.status, dict(r.headers), await r.json()


def engine_bodies(double: SGLangDouble) -> list[Any]:
    return [r.body for r in double.requests_to("/v1/chat/completions")]




@pytest.fixture
async def stalled(double: SGLangDouble) -> AsyncIterator[Any]:
    """``await hold(gw, n)``: a request for ``n`` answers that the engine never finishes, in
    flight until the test ends (then its client leaves and the engine request is aborted)."""
    tasks: list[asyncio.Task[Any]] = []

    async def hold(gw: GatewayUnderTest, n: int = 1) -> None:
        before = gw.gateway.active
        double.script(Fault.STALL)
        tasks.append(asyncio.create_task(post(gw, {**CHAT, "n": n} if n > 1 else CHAT)))
        await wait_for(lambda: gw.gateway.active > before, what="the held request admitted")

    yield hold
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- who may name care --------------------------------------------------------------------


async def test_a_client_may_not_name_its_care_unless_the_gateway_allows_it(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    status, _, payload = await post(gw, CHAT, {"X-LKN-Intervention": "consistency:16"})
    assert status == 403
    assert payload["error"]["type"] == "permission_error"
    assert payload["error"]["code"] == "client_interventions_disabled"
    assert "LKN_CLIENT_INTERVENTIONS" in payload["error"]["message"]
    assert engine_bodies(double) == []
    # What the gateway decides itself is unchanged.
    status, headers, _ = await post(gw, CHAT)
    assert status == 200 and headers["X-LKN-Mode"] == "FLUIDO"


async def test_the_care_key_lets_its_holder_name_care_and_authenticates(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="user-key",
                                           client=ClientLimits(care_key="care-key")))
    care = {"X-LKN-Intervention": "prompt:suffix"}
    user, holder = {"Authorization": "Bearer user-key"}, {"Authorization": "Bearer care-key"}
    assert (await post(gw, CHAT, {**user, **care}))[0] == 403
    status, headers, _ = await post(gw, CHAT, {**holder, **care})
    assert status == 200 and headers["X-LKN-Intervention"] == "prompt:suffix"
    assert (await post(gw, CHAT, holder))[0] == 200
    assert (await post(gw, CHAT, {"Authorization": "Bearer wrong", **care}))[0] == 401


# ---- what one request may cost --------------------------------------------------------------


@pytest.mark.parametrize("extra, param", [
    ({"max_tokens": 16385}, "max_tokens"),
    ({"max_completion_tokens": 100_000, "max_tokens": None}, "max_completion_tokens"),
    ({"n": 5}, "n"),
    ({"min_tokens": 1025, "max_tokens": 2000}, "min_tokens"),
    ({"min_tokens": 9}, "min_tokens"),  # more than its max_tokens (8)
    ({"ignore_eos": "yes"}, "ignore_eos"),
])  # fmt: skip
async def test_what_a_request_may_cost_is_capped_with_a_clear_400(
    extra: dict[str, Any], param: str, double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    body = {k: v for k, v in {**CHAT, **extra}.items() if v is not None}
    status, _, payload = await post(gw, body)
    assert status == 400 and payload["error"]["param"] == param, payload
    assert engine_bodies(double) == []


async def test_ignore_eos_needs_a_budget_and_the_caps_are_settings(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, default_max_tokens=0,
        client=ClientLimits(max_tokens=32, max_n=2, max_min_tokens=4)))
    unbounded = {"model": "smollm2", "messages": HELLO, "ignore_eos": True}
    status, _, payload = await post(gw, unbounded)
    assert status == 400 and payload["error"]["param"] == "ignore_eos"
    assert (await post(gw, {**unbounded, "max_tokens": 6}))[0] == 200
    assert (await post(gw, {**CHAT, "max_tokens": 33}))[0] == 400
    assert (await post(gw, {**CHAT, "n": 2}))[0] == 200
    assert (await post(gw, {**CHAT, "n": 3}))[0] == 400
    assert (await post(gw, {**CHAT, "min_tokens": 5}))[0] == 400


async def test_a_vote_a_client_names_is_bounded_by_the_vote_cap(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, client=CARE_OPEN))
    status, _, payload = await post(gw, CHAT, {"X-LKN-Intervention": "consistency:9"})
    assert status == 400 and payload["error"]["param"] == "X-LKN-Intervention"
    assert "LKN_MAX_VOTE" in payload["error"]["message"]
    assert engine_bodies(double) == []


async def test_a_vote_the_engine_refuses_is_shed_to_one_answer(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    # llama.cpp's server takes n only up to its slot count: above it, a 400 before any answer.
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, client=CARE_OPEN,
                                           decision={"homeostat": HomeostatSettings(shed=False)}))
    vote = {"X-LKN-Intervention": "consistency:3"}
    double.script(Fault.HTTP_400)
    status, headers, payload = await post(gw, CHAT, vote)
    assert status == 200 and payload["choices"][0]["message"]["content"]
    assert headers["X-LKN-Shed"] == "cheaper" and headers["X-LKN-Intervention"] == "prompt:suffix"
    assert "engine refused n=3 (status 400)" in headers["X-LKN-Policy"]
    refused, answered = engine_bodies(double)[-2:]
    assert refused["n"] == 3 and answered.get("n") in (None, 1)
    # Streamed alike: the one answer's events, then [DONE].
    double.script(Fault.HTTP_400)
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True},
                             headers=vote) as r:
            assert r.status == 200 and r.headers["X-LKN-Shed"] == "cheaper"
            events = (await r.text()).split("\n\n")
    assert '"content"' in events[0] and events[-2] == "data: [DONE]"
    assert engine_bodies(double)[-1].get("n") in (None, 1)


# ---- admission by cost ----------------------------------------------------------------------


async def test_a_request_for_n_answers_holds_n_admission_slots(
    double: SGLangDouble, start_gateway: GatewayFactory, stalled: Any,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, max_concurrency=4))
    await stalled(gw, n=3)
    assert gw.gateway.active == 3
    status, headers, payload = await post(gw, {**CHAT, "n": 2})
    assert status == 429 and "counts 2" in payload["error"]["message"]
    assert headers["Retry-After"]
    assert (await post(gw, CHAT))[0] == 200  # one slot is free
    assert gw.gateway.active == 3


async def test_a_vote_a_client_names_holds_one_slot_per_answer(
    double: SGLangDouble, start_gateway: GatewayFactory, stalled: Any,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, max_concurrency=4,
                                           client=CARE_OPEN,
                                           decision={"homeostat": HomeostatSettings(shed=False)}))
    await stalled(gw)
    status, _, _ = await post(gw, CHAT, {"X-LKN-Intervention": "consistency:4"})
    assert status == 429
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Intervention": "consistency:3"})
    assert status == 200 and headers["X-LKN-Intervention"] == "consistency:3"
    assert engine_bodies(double)[-1]["n"] == 3


async def test_a_vote_the_gateway_chose_without_room_for_it_is_shed_to_the_instruction(
    double: SGLangDouble, start_gateway: GatewayFactory, stalled: Any,
) -> None:
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, max_concurrency=4,
        decision={"care_intervention": "consistency:4", "homeostat": HomeostatSettings(shed=False)}))
    await stalled(gw)
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Mode": "analitico"})
    assert status == 200
    assert headers["X-LKN-Mode"] == "ANALITICO" and headers["X-LKN-Intervention"] == "prompt:suffix"
    assert headers["X-LKN-Shed"] == "cheaper" and "no room for 4 answers" in headers["X-LKN-Policy"]
    body = engine_bodies(double)[-1]
    assert body.get("n") in (None, 1)
    assert gw.gateway.active == 1  # the shed request let its slot go; the held one remains


# ---- shedding -----------------------------------------------------------------------------


async def test_care_a_client_names_is_shed_when_the_engines_saturate(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    # One request in flight is saturation here: every decision is at the FLUIDO level.
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, client=CARE_OPEN,
        decision={"homeostat": HomeostatSettings(in_flight_limit=1)}))
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Intervention": "consistency:3"})
    assert status == 200
    assert (headers["X-LKN-Mode"], headers["X-LKN-Intervention"], headers["X-LKN-Shed"]) == (
        "FLUIDO", "none", "fluido")
    assert "shed: consistency:3 -> none" in headers["X-LKN-Policy"]
    assert engine_bodies(double)[-1].get("n") is None
    # Sampling alone costs nothing and stays.
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Intervention": "sampling:rp=1.2"})
    assert headers["X-LKN-Intervention"] == "sampling:rp=1.2" and "X-LKN-Shed" not in headers
    assert engine_bodies(double)[-1]["repetition_penalty"] == 1.2
    # The analitico override is shed alike.
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Mode": "analitico"})
    assert (headers["X-LKN-Mode"], headers["X-LKN-Shed"]) == ("FLUIDO", "fluido")


async def test_care_a_client_names_gets_cheaper_at_the_cheaper_level(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, client=CARE_OPEN,
        decision={"homeostat": HomeostatSettings(queue_set_point=4, dwell=60.0)}))
    homeostat = gw.gateway.decider.homeostat
    homeostat.observe_queue(5)  # the engine's queue over its set point: held for the dwell
    assert homeostat.level().name == "CHEAPER"
    status, headers, _ = await post(gw, CHAT, {"X-LKN-Intervention": "prompt:system"})
    assert status == 200, headers
    assert (headers["X-LKN-Mode"], headers["X-LKN-Intervention"], headers["X-LKN-Shed"]) == (
        "ANALITICO", "prompt:suffix", "cheaper")
    body = engine_bodies(double)[-1]
    assert body["messages"][0]["role"] == "user"  # the instruction moved after the conversation
