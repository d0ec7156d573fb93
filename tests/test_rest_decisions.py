"""Homeostatic decisions through the REST surface, against SGLang test doubles on real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from lkn.config import DEFAULT_INTERVENTION
from lkn.care.bodies import model_system_prompt
from scripts.lib.sglang_double import Fault, Received, SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

I = DEFAULT_INTERVENTION
#: With no system message, the instruction goes under the model's own default system prompt.
SYSTEM_I = f"{model_system_prompt('smollm2')}\n\n{I}"
FLAT = [(f" w{i}", math.log(0.1)) for i in range(10)]
PEAKED = [(" Paris", math.log(0.97)), *((f" w{i}", math.log(0.003)) for i in range(9))]
SIMPLE = "What is the capital of France?"
HARD = "Solve for x: 3x + 7 = 22"


def chat(text: str, system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"model": "smollm2", "messages": messages, "max_tokens": 4, **extra}


def strict_json(text: str) -> Any:
    """json.loads that rejects NaN / Infinity, as a browser or another language would."""
    def reject(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=reject)


def probes(double: SGLangDouble) -> list[Received]:
    return [r for r in double.received
            if isinstance(r.body, dict) and str(r.body.get("rid", "")).endswith("-probe")]


def generations(double: SGLangDouble, path: str = "/v1/chat/completions") -> list[Received]:
    return [r for r in double.requests_to(path)
            if isinstance(r.body, dict) and not str(r.body.get("rid", "")).endswith("-probe")]


@pytest.fixture
async def doubles() -> AsyncIterator[tuple[SGLangDouble, SGLangDouble]]:
    async with AsyncExitStack() as stack:
        flat = await stack.enter_async_context(SGLangDouble(top_logprobs=FLAT))
        peaked = await stack.enter_async_context(SGLangDouble(top_logprobs=PEAKED))
        yield flat, peaked


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **headers: str
) -> tuple[int, CIMultiDict[str], Any]:
    async with http.post(url, json=body, headers=headers) as r:
        text = await r.text()
        return r.status, CIMultiDict(r.headers), strict_json(text) if text else None


# ---- the entropy probe ------------------------------------------------------------------


async def test_probe_runs_on_the_generating_engine_and_drives_the_mode(
    doubles: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
) -> None:
    flat, peaked = doubles
    gw = await start_gateway(make_settings(flat.url, peaked.url, grpc_enabled=False,
                                           decision={"strategy": "entropy",
                                                     "speculative": False}))
    modes: dict[str, str] = {}
    for _ in range(6):
        status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(SIMPLE))
        assert status == 200
        modes[headers["X-Request-Id"]] = headers["X-LKN-Mode"]
        assert headers["X-LKN-Strategy"] == "entropy" and headers["X-LKN-Score"]
    for double, mode in ((flat, "ANALITICO"), (peaked, "FLUIDO")):
        served = [g.body["rid"] for g in generations(double)]
        probed = [p.body["rid"].removesuffix("-probe") for p in probes(double)]
        assert served and sorted(served) == sorted(probed)  # same engine, every time
        assert all(modes[rid] == mode for rid in served)
    for probe in probes(flat) + probes(peaked):
        body = probe.body
        assert probe.path == "/v1/chat/completions"
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 10
        assert body["temperature"] == 0.0 and body["stream"] is False
        assert body["messages"] == chat(SIMPLE)["messages"]  # the prompt, before any intervention
    # ANALITICO generations carry the instruction; FLUIDO ones are untouched.
    assert all(g.body["messages"][0] == {"role": "system", "content": SYSTEM_I} for g in generations(flat))
    assert all(g.body["messages"] == chat(SIMPLE)["messages"] for g in generations(peaked))


async def test_probe_tokens_and_top_k_follow_the_settings(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=PEAKED) as double:
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False,
            decision={"strategy": "entropy", "probe_tokens": 3, "probe_top_k": 5}))
        status, headers, body = await post(http, gw.v1 + "/lkn/probe", chat(SIMPLE))
        assert status == 200
        (probe,) = probes(double)
        assert probe.body["max_tokens"] == 3 and probe.body["top_logprobs"] == 5
        assert len(body["entropies"]) == 3 and all(len(p) == 5 for p in body["top_tokens"])


async def test_completions_probe_uses_native_generate(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "entropy",
                                                         "speculative": False}))
        status, headers, _ = await post(http, gw.v1 + "/completions",
                                        {"model": "smollm2", "prompt": "Once upon", "max_tokens": 3})
        assert status == 200 and headers["X-LKN-Mode"] == "ANALITICO"
        (probe,) = probes(double)
        assert probe.path == "/generate" and probe.body["text"] == "Once upon"
        assert probe.body["sampling_params"]["max_new_tokens"] == 1
        assert probe.body["top_logprobs_num"] == 10 and probe.body["return_logprob"] is True
        (gen,) = generations(double, "/v1/completions")
        assert gen.body["prompt"] == I + "\n\nOnce upon"


async def test_failing_probe_falls_back_to_rules_and_the_request_succeeds(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "entropy"}))
        double.script(Fault.HTTP_500)
        status, headers, body = await post(http, gw.v1 + "/chat/completions", chat(HARD))
        assert status == 200 and body["object"] == "chat.completion"
        assert headers["X-LKN-Mode"] == "ANALITICO"  # the rules saw the equation
        assert headers["X-LKN-Fallback"].startswith("probe_failed: EngineError")
        double.script(Fault.HTTP_500)
        status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(SIMPLE))
        assert status == 200 and headers["X-LKN-Mode"] == "FLUIDO"
        async with http.get(gw.url + "/metrics") as r:
            metrics = await r.text()
    assert 'lkn_probe_fallbacks_total{reason="failed"} 2.0' in metrics
    assert gw.gateway.pool.engines[0].breaker.consecutive_failures == 0


async def test_stalled_probe_times_out_and_only_the_probe_is_aborted(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False,
            decision={"strategy": "entropy", "probe_timeout": 0.2, "speculative": False}))
        double.script(Fault.STALL)
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, headers, body = await post(http, gw.v1 + "/chat/completions",
                                           chat(SIMPLE, stream=False))
        assert status == 200 and body["choices"][0]["message"]["content"]
        assert loop.time() - started < 2.0
        assert headers["X-LKN-Fallback"] == "probe_timeout" and headers["X-LKN-Mode"] == "FLUIDO"
        rid = headers["X-Request-Id"]
        await wait_for(lambda: double.aborts)
        assert double.aborts == [rid + "-probe"] and rid not in double.cancelled_rids
        async with http.get(gw.url + "/metrics") as r:
            assert 'lkn_probe_fallbacks_total{reason="timeout"} 1.0' in await r.text()


async def test_housekeeping_requests_never_probe(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "entropy"}))
        title = chat("### Task:\nGenerate a concise, 3-5 word title summarizing the chat "
                     "history.\n### Output:\nJSON format: { \"title\": \"your concise title\" }",
                     model="smollm2+analitico")
        status, headers, _ = await post(http, gw.v1 + "/chat/completions", title)
        assert status == 200
        assert headers["X-LKN-Mode"] == "FLUIDO" and headers["X-LKN-Strategy"] == "housekeeping"
        assert probes(double) == []
        (gen,) = generations(double)
        assert gen.body["messages"] == title["messages"]


# ---- the intervention -------------------------------------------------------------------


async def test_intervention_is_merged_once_into_the_system_message(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    body = chat(HARD, system="You are a patient tutor.")
    status, headers, _ = await post(http, gw.v1 + "/chat/completions", body)
    assert status == 200 and headers["X-LKN-Mode"] == "ANALITICO"
    assert headers["X-LKN-Strategy"] == "rules" and "X-LKN-Applied" not in headers
    (gen,) = generations(double)
    messages = gen.body["messages"]
    assert messages == [
        {"role": "system", "content": "You are a patient tutor.\n\n" + I},
        {"role": "user", "content": HARD},
    ]
    assert json.dumps(gen.body).count(I) == 1
    # Streaming gets the same treatment, and the decision headers.
    async with http.post(gw.v1 + "/chat/completions", json={**body, "stream": True}) as r:
        assert r.status == 200 and r.headers["X-LKN-Mode"] == "ANALITICO"
        await r.read()
    assert generations(double)[-1].body["messages"] == messages


async def test_fluido_requests_reach_the_engine_unchanged(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(SIMPLE, system="S"))
    assert status == 200 and headers["X-LKN-Mode"] == "FLUIDO" and "X-LKN-Score" not in headers
    assert generations(double)[0].body["messages"] == chat(SIMPLE, system="S")["messages"]


async def test_shadow_reports_without_applying(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                           decision={"shadow": True}))
    status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(HARD))
    assert status == 200 and headers["X-LKN-Mode"] == "ANALITICO"
    assert headers["X-LKN-Applied"] == "false"
    assert generations(double)[0].body["messages"] == chat(HARD)["messages"]
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'lkn_decisions_total{applied="false",mode="ANALITICO",strategy="rules"} 1.0' in text


# ---- passthrough and overrides ----------------------------------------------------------


async def test_passthrough_skips_decisions(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, decision={"mode": "passthrough", "strategy": "entropy"}))
    status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(HARD))
    assert status == 200
    assert headers["X-LKN-Strategy"] == "passthrough" and headers["X-LKN-Applied"] == "false"
    assert probes(double) == []
    assert generations(double)[0].body["messages"] == chat(HARD)["messages"]
    async with http.get(gw.url + "/metrics") as r:
        assert "lkn_decisions_total{" not in await r.text()


async def test_header_override_wins_over_the_strategy(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "entropy"}))
        status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(SIMPLE),
                                        **{"X-LKN-Mode": "analitico"})
        assert status == 200
        assert (headers["X-LKN-Mode"], headers["X-LKN-Strategy"]) == ("ANALITICO", "override")
        status, headers, _ = await post(http, gw.v1 + "/chat/completions", chat(HARD),
                                        **{"X-LKN-Mode": "fluido"})
        assert (headers["X-LKN-Mode"], headers["X-LKN-Strategy"]) == ("FLUIDO", "override")
        assert probes(double) == []
        first, second = generations(double)
        assert first.body["messages"][0] == {"role": "system", "content": SYSTEM_I}
        assert second.body["messages"] == chat(HARD)["messages"]


async def test_model_variant_override(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await post(http, gw.v1 + "/chat/completions",
                                    chat(SIMPLE, model="smollm2+analitico"))
    assert status == 200
    assert (headers["X-LKN-Mode"], headers["X-LKN-Strategy"]) == ("ANALITICO", "override")
    status, headers, _ = await post(http, gw.v1 + "/chat/completions",
                                    chat(HARD, model="smollm2+fluido"))
    assert (headers["X-LKN-Mode"], headers["X-LKN-Strategy"]) == ("FLUIDO", "override")
    first, second = generations(double)
    assert first.body["model"] == second.body["model"] == "smollm2"
    assert first.body["messages"][0] == {"role": "system", "content": SYSTEM_I}
    assert I not in json.dumps(second.body)


# ---- visibility -------------------------------------------------------------------------


async def test_probe_endpoint_returns_the_full_decision_as_valid_json(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    top = [(" yes", math.log(0.5)), (" no", math.log(0.3)), (" maybe", float("-inf"))]
    async with SGLangDouble(top_logprobs=top) as double:
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False, decision={"strategy": "entropy", "probe_top_k": 3}))
        status, headers, body = await post(http, gw.v1 + "/lkn/probe", chat(SIMPLE))
        assert status == 200 and generations(double) == [] and len(probes(double)) == 1
    assert body["request_id"] == headers["X-Request-Id"]
    assert body["strategy"] == "entropy" and body["mode"] == headers["X-LKN-Mode"]
    expected = -(0.625 * math.log2(0.625) + 0.375 * math.log2(0.375)) / math.log2(3)
    assert body["score"] == pytest.approx(expected, abs=1e-6)
    assert body["threshold"] == 0.6 and body["mode"] == "ANALITICO"
    assert body["entropies"] == [pytest.approx(expected, abs=1e-6)]
    assert body["tail_mass"] == [pytest.approx(0.2)]
    assert body["top_tokens"] == [[
        {"token": " yes", "logprob": pytest.approx(math.log(0.5))},
        {"token": " no", "logprob": pytest.approx(math.log(0.3))},
        {"token": " maybe", "logprob": None},
    ]]
    assert body["probe_latency_ms"] > 0 and body["fallback"] is None and body["applied"] is True


async def test_probe_endpoint_with_rules_needs_no_engine_call(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    before = len(double.received)
    status, headers, body = await post(http, gw.v1 + "/lkn/probe",
                                       chat("Compare Python and Go step by step"))
    assert status == 200 and len(double.received) == before
    assert body["mode"] == "ANALITICO" and body["strategy"] == "rules"
    assert set(body["signals"]) == {"code_topic", "multi_step"}
    assert body["score"] is None and body["top_tokens"] == []


async def test_metrics_and_log_line_carry_the_decision(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Tell me about my neighbour Rosalind's cat"
    async with SGLangDouble(top_logprobs=FLAT) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "hybrid"}))
        with caplog.at_level(logging.DEBUG, logger="lkn.decision"):
            _, first, _ = await post(http, gw.v1 + "/chat/completions", chat(secret))
            _, second, _ = await post(http, gw.v1 + "/chat/completions", chat(HARD))
        async with http.get(gw.url + "/metrics") as r:
            metrics = await r.text()
    assert first["X-LKN-Mode"] == "ANALITICO" and first["X-LKN-Score"] == "1.0000"
    assert second["X-LKN-Mode"] == "ANALITICO" and "X-LKN-Score" not in second
    assert 'lkn_decisions_total{applied="true",mode="ANALITICO",strategy="hybrid"} 2.0' in metrics
    assert "lkn_probe_entropy_count 1.0" in metrics
    assert "lkn_probe_latency_seconds_count 1.0" in metrics
    lines = [r.getMessage() for r in caplog.records if r.name == "lkn.decision"]
    assert len(lines) == 2
    assert lines[0].startswith(f"decision rid={first['X-Request-Id']} engine=engine-1 ")
    assert "mode=ANALITICO strategy=hybrid score=1.0000" in lines[0]
    assert "signals=open_ended,high_entropy" in lines[0]  # a composition asked for, no risk
    assert f"rid={second['X-Request-Id']}" in lines[1] and "signals=math" in lines[1]
    assert all("Rosalind" not in line and "3x" not in line for line in lines)
