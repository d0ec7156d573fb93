"""Speculative FLUIDO against the SGLang double: held tokens, release, abort and restart."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from lkn.config import DecisionSettings
from lkn.decision import Decider
from lkn.engines import HttpEngineClient as EngineClient
from lkn.metrics import Metrics
from lkn.speculative import HELD_SUFFIX, RESTART_SUFFIX, HeldGeneration
from lkn.values import Chunk, Decision, GenerateRequest, JSONObject, Mode, Route
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import make_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

FLAT = [(f" w{i}", math.log(0.1)) for i in range(10)]
SIMPLE = "hello there my friend"
MATH = "Solve 3x + 7 = 22"


def chat(text: str = SIMPLE, stream: bool = True, **extra: Any) -> GenerateRequest:
    body: JSONObject = {"model": "smollm2", "max_tokens": 8, "stream": stream,
                        "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": text}], **extra}
    return GenerateRequest(Route.CHAT, body, "0123456789abcdef", stream=stream)


def body_for(decider: Decider, request: GenerateRequest) -> Any:
    def build(decision: Decision) -> JSONObject:
        body = decider.apply(decision, request.body)
        if request.stream:
            body = {**body, "stream_options": {"include_usage": True}}
        return body
    return build


@asynccontextmanager
async def engine(**double: Any) -> AsyncIterator[tuple[SGLangDouble, EngineClient]]:
    async with SGLangDouble(**double) as d:
        settings = make_settings(d.url)
        client = EngineClient(settings.engines[0], settings)
        await client.check_ready(2.0)
        try:
            yield d, client
        finally:
            await client.close()


def decider(**settings: Any) -> Decider:
    base = {"strategy": "entropy", "score_normalise": False, **settings}
    return Decider(DecisionSettings(**base), Metrics())


async def held_stream(
    d: Decider, client: EngineClient, request: GenerateRequest, override: str | None = None
) -> tuple[Decision, HeldGeneration, AsyncIterator[Chunk]]:
    held = HeldGeneration(client, request, d.settings, None)
    decision = await d.decide(request, held, None, override=override)  # type: ignore[arg-type]
    return decision, held, await held.open_stream(decision, body_for(d, request))


def generations(double: SGLangDouble) -> list[Any]:
    return [r.body for r in double.requests_to("/v1/chat/completions")]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


# ---- FLUIDO: released --------------------------------------------------------------


@pytest.mark.parametrize("tokens", [1, 3, 8, 16])
async def test_fluido_releases_the_held_tokens_once_in_order_then_streams_on(
    tokens: int,
) -> None:
    async with engine() as (double, client):
        direct = [c async for c in client.stream(Route.CHAT, chat().body, "direct")]
        d = decider(probe_tokens=tokens)
        decision, held, chunks = await held_stream(d, client, chat())
        got = [c async for c in chunks]
        assert decision.mode is Mode.FLUIDO and held.path == "released"
        assert "".join(c.text for c in got) == "".join(c.text for c in direct)
        # Each chunk once, in order (the held request also asks for a usage chunk).
        assert [c.text for c in got if not c.usage_only] == [c.text for c in direct]
        assert sum(c.usage_only for c in got) == 1
        bodies = generations(double)
        assert len(bodies) == 2  # the direct one and the held one: no second request
        sent = bodies[1]
        assert sent["rid"] == "0123456789abcdef" + HELD_SUFFIX
        assert sent["logprobs"] is True and sent["top_logprobs"] == 10
        assert sent["messages"] == chat().body["messages"]  # untouched
        # The client did not ask for logprobs: none reach it.
        assert all(json.loads(c.raw)["choices"] == [] or
                   all(ch.get("logprobs") is None for ch in json.loads(c.raw)["choices"])
                   for c in got)
        assert decision.entropies and len(decision.entropies) <= tokens


async def test_client_logprobs_pass_through_with_the_clients_own_top_k() -> None:
    async with engine() as (double, client):
        request = chat(logprobs=True, top_logprobs=3)
        decision, held, chunks = await held_stream(decider(), client, request)
        got = [c async for c in chunks]
        assert decision.mode is Mode.FLUIDO and held.path == "released"
        assert generations(double)[0]["top_logprobs"] == 3
        tokens = [e for c in got for ch in json.loads(c.raw)["choices"]
                  if ch.get("logprobs") for e in ch["logprobs"]["content"]]
        assert len(tokens) == 8 and all(len(e["top_logprobs"]) == 3 for e in tokens)


async def test_non_streamed_fluido_is_put_back_together() -> None:
    async with engine() as (double, client):
        _, direct = await client.complete(Route.CHAT, chat(stream=False).body, "direct")
        d = decider(probe_tokens=2)
        request = chat(stream=False)
        held = HeldGeneration(client, request, d.settings, None)
        decision = await d.decide(request, held, None)  # type: ignore[arg-type]
        confirmed: list[bool] = []
        raw, parsed = await held.open_complete(decision, body_for(d, request),
                                          lambda: confirmed.append(True))
        assert decision.mode is Mode.FLUIDO and held.path == "released" and confirmed
        assert json.loads(raw) == parsed
        message = parsed["choices"][0]["message"]  # type: ignore[index]
        assert message["content"] == direct["choices"][0]["message"]["content"]  # type: ignore[index]
        assert parsed["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
        assert parsed["choices"][0]["logprobs"] is None  # type: ignore[index]
        assert parsed["usage"]["completion_tokens"] == 8  # type: ignore[index]
        assert len(generations(double)) == 2 and generations(double)[1]["stream"] is True


async def test_completions_route_is_held_and_stripped() -> None:
    async with engine() as (double, client):
        request = GenerateRequest(Route.COMPLETION, {"model": "smollm2", "prompt": "Once upon",
                                                     "max_tokens": 6, "stream": True},
                                  "fedcba9876543210", stream=True)
        d = decider(probe_tokens=2)
        decision, held, chunks = await held_stream(d, client, request)
        got = [c async for c in chunks]
        assert decision.mode is Mode.FLUIDO and held.path == "released"
        assert double.requests_to("/v1/completions")[0].body["logprobs"] == 10
        assert all(ch.get("logprobs") is None for c in got for ch in json.loads(c.raw)["choices"])
        assert sum(1 for c in got if c.text) == 6


# ---- ANALITICO: dropped and restarted on the cached prefix --------------------------


async def test_analitico_aborts_the_held_request_and_restarts_after_the_conversation() -> None:
    async with engine(top_logprobs=FLAT, token_delay=0.01) as (double, client):
        d = decider(probe_tokens=2, restart_placement="message")
        decision, held, chunks = await held_stream(d, client, chat())
        got = [c async for c in chunks]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"
        await settle()
        rid = "0123456789abcdef"
        assert rid + HELD_SUFFIX in double.aborts + double.cancelled_rids
        first, restart = generations(double)
        assert restart["rid"] == rid + RESTART_SUFFIX
        assert "logprobs" not in restart and "top_logprobs" not in restart
        original = chat().body["messages"]
        # The conversation is untouched; the instruction is a user message of its own after it.
        assert restart["messages"][:-1] == original
        assert restart["messages"][-1] == {"role": "user", "content": d.settings.intervention}
        assert sum(1 for c in got if c.text) == 8  # the client sees the restart only
        assert held.placement == "message"


async def restarted_with(placement: str) -> tuple[Decider, Any]:
    """The decider and the body of the ANALITICO restart with ``placement``."""
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider(restart_placement=placement)
        decision, held, chunks = await held_stream(d, client, chat())
        [c async for c in chunks]
        return d, generations(double)[1]


async def test_after_placement_appends_the_instruction_to_the_last_user_message() -> None:
    d, restart = await restarted_with("after")
    original = chat().body["messages"]
    assert restart["messages"][:-1] == original[:-1]
    content = restart["messages"][-1]["content"]
    assert content.startswith(SIMPLE) and content.endswith(d.settings.intervention)


async def test_by_default_the_restart_continues_an_answer_that_starts_with_the_prefix() -> None:
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat())
        got = [c async for c in chunks]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"
        restart = generations(double)[1]
        assert restart["messages"][:-1] == chat().body["messages"]
        assert restart["messages"][-1] == {"role": "assistant", "content": d.settings.restart_prefix}
        assert restart["continue_final_message"] is True
        assert sum(1 for c in got if c.text) == 8 and held.placement == "answer"


@pytest.mark.parametrize("model", ["smollm2", "Qwen2.5-Coder-0.5B-Instruct"])
async def test_the_default_intervention_restarts_on_the_prefix_under_a_models_own_system_prompt(
    model: str,
) -> None:
    # No system message: LKN_INTERVENTION ("prompt", in the system prompt) puts the
    # instruction under the model's own default system prompt. The restart must not: the
    # held generation prefilled the conversation under the template's default, so the
    # instruction goes after it and the whole prompt stays a cached prefix.
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider()  # care_intervention "prompt", restart_placement "answer": the defaults
        request = chat(model=model)
        request.body["messages"] = [{"role": "user", "content": SIMPLE}]
        decision, held, chunks = await held_stream(d, client, request)
        [c async for c in chunks]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"
        applied = body_for(d, request)(decision)
        assert applied["messages"][0]["role"] == "system"  # what a fresh request would get
        restart = generations(double)[1]
        assert restart["messages"] == [{"role": "user", "content": SIMPLE},
                                       {"role": "assistant", "content": d.settings.restart_prefix}]
        assert restart["continue_final_message"] is True and held.placement == "answer"


async def test_an_engine_that_rejects_the_continuation_gets_the_instruction_as_a_message() -> None:
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat())
        double.script(Fault.HTTP_400)  # the next generation request: the first restart body
        got = [c async for c in chunks]
        assert held.path == "restarted-fallback" and sum(1 for c in got if c.text) == 8
        assert held.placement == "message"  # where the answer came from, not the first try
        _, rejected, taken = generations(double)
        assert rejected["continue_final_message"] is True
        assert "continue_final_message" not in taken
        assert taken["messages"][-1] == {"role": "user", "content": d.settings.intervention}


@pytest.mark.parametrize("stream", [True, False])
async def test_a_template_that_rejects_two_user_turns_gets_the_appended_instruction(
    stream: bool,
) -> None:
    async with engine(top_logprobs=FLAT, alternating_roles=True) as (double, client):
        d = decider(restart_placement="message")
        request = chat(stream=stream)
        held = HeldGeneration(client, request, d.settings, None)
        decision = await d.decide(request, held, None)  # type: ignore[arg-type]
        if stream:
            got = [c async for c in await held.open_stream(decision, body_for(d, request))]
            assert sum(1 for c in got if c.text) == 8
        else:
            _, parsed = await held.open_complete(decision, body_for(d, request))
            assert parsed["choices"][0]["message"]["content"]  # type: ignore[index]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted-fallback"
        assert held.placement == "after"
        held_body, rejected, taken = generations(double)
        assert rejected["messages"][-1] == {"role": "user", "content": d.settings.intervention}
        assert taken["rid"] == rejected["rid"] == request.request_id + RESTART_SUFFIX
        assert len(taken["messages"]) == len(request.body["messages"])
        assert taken["messages"][-1]["content"] == SIMPLE + "\n\n" + d.settings.intervention


async def test_a_rejection_of_both_restart_bodies_reaches_the_client() -> None:
    from lkn.errors import EngineRejected

    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat())
        double.script(Fault.HTTP_400, Fault.HTTP_400, Fault.HTTP_400)
        with pytest.raises(EngineRejected):
            [c async for c in chunks]
        assert len(generations(double)) == 4  # held, then the three restart bodies


async def test_seed_placement_is_a_setting() -> None:
    d, restart = await restarted_with("system")
    assert restart["messages"][0]["content"].endswith(d.settings.intervention)
    assert restart["messages"][-1]["content"] == SIMPLE


async def test_non_streamed_analitico_restarts_non_streamed() -> None:
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider()
        request = chat(stream=False)
        held = HeldGeneration(client, request, d.settings, None)
        decision = await d.decide(request, held, None)  # type: ignore[arg-type]
        _, parsed = await held.open_complete(decision, body_for(d, request))
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"
        restart = generations(double)[1]
        assert restart.get("stream") is False and restart["rid"].endswith(RESTART_SUFFIX)
        assert parsed["choices"][0]["message"]["content"]  # type: ignore[index]


async def test_analitico_that_changes_nothing_keeps_the_held_generation() -> None:
    # Careful sampling for a client that chose its own sampling: the engine body would be
    # the same, so a restart would only ask the same question twice.
    async with engine(top_logprobs=FLAT) as (double, client):
        d = decider(care_intervention="sampling")
        request = chat(temperature=0.5, top_p=0.9)
        decision, held, chunks = await held_stream(d, client, request)
        got = [c async for c in chunks]
        assert (decision.mode, decision.intervention) == (Mode.ANALITICO, "sampling")
        assert held.path == "released" and len(generations(double)) == 1
        assert sum(1 for c in got if c.text) == 8
        # Left to the gateway, the same care changes the body: restarted.
        decision, held, chunks = await held_stream(d, client, chat())
        [c async for c in chunks]
        assert held.path == "restarted" and generations(double)[-1]["temperature"] == 0.0


@pytest.mark.parametrize("point", ["before", "during", "after"])
async def test_restart_at_every_point_of_the_held_tokens(point: str) -> None:
    """ANALITICO decided before the first held token arrived, while some were held, and
    after all were: the held request is aborted, the client sees the restart alone."""
    rid = "0123456789abcdef"
    if point == "after":  # the entropy decides once all held tokens are in
        double_args: dict[str, Any] = {"top_logprobs": FLAT, "token_delay": 0.01}
        settings: dict[str, Any] = {"probe_tokens": 4}
    elif point == "during":  # the budget runs out with 2-3 of 8 tokens held; the rules decide
        double_args, settings = {"token_delay": 0.2}, {"probe_tokens": 8, "probe_timeout": 0.5}
    else:  # the budget runs out before the first token; the rules decide
        double_args, settings = {"prefill_delay": 1.0}, {"probe_timeout": 0.2}
    async with engine(**double_args) as (double, client):
        d = decider(**settings)
        request = chat(MATH)
        held = HeldGeneration(client, request, d.settings, None)
        decision = await d.decide(request, held, None)  # type: ignore[arg-type]
        held_now = len(held._positions)  # tokens in hand when the decision came
        chunks = await held.open_stream(decision, body_for(d, request))
        got = [c async for c in chunks]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"
        if point == "before":
            assert held_now == 0 and decision.fallback == "probe_timeout"
        elif point == "during":
            assert 0 < held_now < 8 and decision.fallback == "probe_timeout"
        else:
            assert held_now == 4 and decision.fallback is None
        await settle()
        assert rid + HELD_SUFFIX in double.aborts + double.cancelled_rids
        held_body, restart = generations(double)
        assert held_body["rid"] == rid + HELD_SUFFIX and restart["rid"] == rid + RESTART_SUFFIX
        # The client gets the restart's 8 tokens, none of the held ones, and no logprobs.
        assert sum(1 for c in got if c.text) == 8 and sum(c.usage_only for c in got) == 1
        assert all(ch.get("logprobs") is None for c in got for ch in json.loads(c.raw)["choices"])


# ---- abort at every point ----------------------------------------------------------


async def test_client_gone_before_the_first_held_token_aborts_the_engine_request() -> None:
    async with engine(prefill_delay=5.0) as (double, client):
        d = decider(probe_timeout=30.0)
        request = chat()
        held = HeldGeneration(client, request, d.settings, None)
        task = asyncio.ensure_future(d.decide(request, held, None))  # type: ignore[arg-type]
        await wait_for(lambda: len(generations(double)) == 1)  # in the engine's prefill
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await held.aclose()
        await settle()
        assert "0123456789abcdef" + HELD_SUFFIX in double.aborts + double.cancelled_rids
        assert len(generations(double)) == 1


async def test_client_gone_during_the_held_tokens_aborts_the_engine_request() -> None:
    async with engine(token_delay=0.3) as (double, client):
        d = decider(probe_tokens=8, probe_timeout=30.0)
        request = chat()
        held = HeldGeneration(client, request, d.settings, None)
        task = asyncio.ensure_future(d.decide(request, held, None))  # type: ignore[arg-type]
        await wait_for(lambda: len(held._held) >= 2)  # tokens are held, the probe not complete
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await held.aclose()
        await settle()
        assert "0123456789abcdef" + HELD_SUFFIX in double.aborts + double.cancelled_rids


async def test_client_gone_after_release_aborts_the_engine_request() -> None:
    async with engine(token_delay=0.05) as (double, client):
        d = decider(probe_tokens=2)
        decision, held, chunks = await held_stream(d, client, chat(max_tokens=200))
        first = await chunks.__anext__()
        assert first is not None and decision.mode is Mode.FLUIDO
        await chunks.aclose()  # type: ignore[attr-defined]
        await settle()
        assert "0123456789abcdef" + HELD_SUFFIX in double.aborts + double.cancelled_rids


async def test_client_gone_during_the_restart_aborts_the_restart() -> None:
    async with engine(top_logprobs=FLAT, token_delay=0.05) as (double, client):
        decision, held, chunks = await held_stream(decider(), client, chat(max_tokens=200))
        await chunks.__anext__()
        await chunks.aclose()  # type: ignore[attr-defined]
        await settle()
        gone = double.aborts + double.cancelled_rids
        assert "0123456789abcdef" + RESTART_SUFFIX in gone
        assert "0123456789abcdef" + HELD_SUFFIX in gone


async def test_probe_budget_over_while_holding_lets_the_rules_decide() -> None:
    # Slow first token: the probe budget runs out; the rules say FLUIDO, so the held
    # generation is still the answer (no second request); MATH would be restarted.
    async with engine(prefill_delay=0.5) as (double, client):
        d = decider(probe_timeout=0.1)
        decision, held, chunks = await held_stream(d, client, chat())
        got = [c async for c in chunks]
        assert decision.fallback == "probe_timeout" and decision.mode is Mode.FLUIDO
        assert held.path == "released" and len(generations(double)) == 1
        assert sum(1 for c in got if c.text) == 8
        decision, held, chunks = await held_stream(d, client, chat(MATH))
        [c async for c in chunks]
        assert decision.mode is Mode.ANALITICO and held.path == "restarted"


async def test_an_engine_error_while_holding_falls_back_and_starts_afresh() -> None:
    async with engine() as (double, client):
        double.script(Fault.HTTP_500)
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat())
        got = [c async for c in chunks]
        assert decision.fallback and decision.fallback.startswith("probe_failed")
        assert sum(1 for c in got if c.text) == 8 and len(generations(double)) == 2


async def test_decisions_without_a_probe_start_nothing_early() -> None:
    async with engine() as (double, client):
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat(), override="analitico")
        [c async for c in chunks]
        assert held.path == "fresh" and not held.probed
        (only,) = generations(double)
        assert only["rid"] == "0123456789abcdef" and "logprobs" not in only


@pytest.mark.parametrize("extra", [{"n": 2}, {"logprobs": True, "top_logprobs": 1}])
async def test_requests_that_cannot_be_held_use_the_separate_probe(extra: JSONObject) -> None:
    async with engine() as (double, client):
        d = decider()
        decision, held, chunks = await held_stream(d, client, chat(**extra))
        [c async for c in chunks]
        assert not held.probed and decision.score is not None
        probe, generation = generations(double)
        assert probe["rid"].endswith("-probe") and probe["max_tokens"] == 1


async def test_speculation_off_uses_the_separate_probe() -> None:
    async with engine() as (double, client):
        d = decider(speculative=False)
        decision, held, chunks = await held_stream(d, client, chat())
        [c async for c in chunks]
        assert not held.probed and len(generations(double)) == 2


# ---- through the gateway -------------------------------------------------------------


async def test_gateway_streams_the_held_generation_and_reports_the_homeostat(
    start_gateway: Any,
) -> None:
    import aiohttp

    async with SGLangDouble() as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision={"strategy": "entropy"}))
        body = {"model": "smollm2", "max_tokens": 6, "stream": True,
                "messages": [{"role": "user", "content": SIMPLE}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-LKN-Mode"] == "FLUIDO"
                raw = await r.read()
            events = [json.loads(line[6:]) for line in raw.split(b"\n")
                      if line.startswith(b"data: {")]
            assert "".join((c["choices"][0]["delta"].get("content") or "")
                           for c in events if c["choices"])
            assert all(ch.get("logprobs") is None for e in events for ch in e["choices"])
            (only,) = generations(double)
            assert only["rid"].endswith(HELD_SUFFIX) and only["logprobs"] is True
            for _ in range(100):  # the engine's queue, read from its /v1/loads
                async with http.get(gw.url + "/ready") as r:
                    state = (await r.json())["homeostat"]
                if state["load"]["queue"] is not None:
                    break
                await asyncio.sleep(0.05)
            assert state["load"]["queue"] == 0.0 and double.requests_to("/v1/loads")
            assert state["shed_level"] == "none" and state["threshold"] == 0.6
            assert state["load"]["limit"] == 256
            async with http.post(gw.v1 + "/lkn/probe", json=body) as r:
                probe = await r.json()
            assert probe["homeostat"]["window"] == 0 and probe["score"] is not None
            async with http.get(gw.url + "/metrics") as r:
                assert "lkn_homeostat_threshold 0.6" in await r.text()


async def test_queue_watcher_reads_sglang_loads_and_skips_servers_without_them() -> None:
    from lkn.decision.homeostat import Homeostat
    from lkn.pool import EnginePool
    from lkn.queues import QueueWatcher

    async with SGLangDouble() as double:
        settings = make_settings(double.url, f"openai={double.url}/other")
        pool = EnginePool.from_settings(settings, Metrics())
        homeostat = Homeostat(DecisionSettings())
        watcher = QueueWatcher(pool, homeostat, 1.0)
        try:
            assert await watcher.poll() == 0.0
            assert homeostat.state()["load"]["queue"] == 0.0  # type: ignore[index]
            assert len(double.requests_to("/v1/loads")) == 1  # the openai= engine is skipped
        finally:
            await pool.close()


async def test_a_vote_after_a_held_generation_is_one_request_of_its_own(
    start_gateway: Any,
) -> None:
    import aiohttp

    async with SGLangDouble(top_logprobs=FLAT, token_delay=0.01) as double:
        gw = await start_gateway(make_settings(
            double.url, grpc_enabled=False,
            decision={"strategy": "entropy", "care_intervention": "consistency:3"}))
        body = {"model": "smollm2", "max_tokens": 6, "stream": True,
                "messages": [{"role": "user", "content": SIMPLE}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                assert r.status == 200 and r.headers["X-LKN-Mode"] == "ANALITICO"
                assert "vote" in r.headers["X-LKN-Policy"]
                raw = await r.read()
        events = [json.loads(line[6:]) for line in raw.split(b"\n")
                  if line.startswith(b"data: {")]
        assert all(len(e["choices"]) <= 1 for e in events)
        assert "".join((e["choices"][0]["delta"].get("content") or "")
                       for e in events if e["choices"])
        await settle()
        held, vote = generations(double)
        assert held["rid"].endswith(HELD_SUFFIX) and held["stream"] is True
        assert held["rid"] in double.aborts + double.cancelled_rids
        assert (vote["n"], vote.get("stream", False)) == (3, False)
        assert not vote["rid"].endswith((HELD_SUFFIX, RESTART_SUFFIX))
