"""The decider's strategies and precedence, with a scripted engine standing in for the probe."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from lkn.config import DecisionSettings, HomeostatSettings
from lkn.decision import Decider
from lkn.engines import EngineClient
from lkn.errors import EngineError, EngineTimeout
from lkn.metrics import Metrics
from lkn.values import PASSTHROUGH, GenerateRequest, JSONObject, Mode, ProbeResult, Route, TopToken

pytestmark = pytest.mark.fast

FLAT = tuple(TopToken(f"t{i}", math.log(0.1)) for i in range(10))
PEAKED = (TopToken("Paris", math.log(0.98)), *(TopToken(f"t{i}", math.log(0.002)) for i in range(9)))


@dataclass
class FakeEngine:
    """Answers probes with scripted positions, or raises / hangs."""

    positions: tuple[tuple[TopToken, ...], ...] = (PEAKED,)
    error: BaseException | None = None
    delay: float = 0.0
    name: str = "fake:1"
    model_id: str | None = "served-model"
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def probe(self, route: Route, body: JSONObject, rid: str, top_k: int, tokens: int,
                    deadline: float | None = None) -> ProbeResult:
        self.calls.append({"route": route, "body": body, "rid": rid, "top_k": top_k,
                           "tokens": tokens, "deadline": deadline})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return ProbeResult(self.positions, latency_ms=12.5, engine=self.name)


def engine(**kwargs: Any) -> EngineClient:
    return cast(EngineClient, FakeEngine(**kwargs))


def calls(e: EngineClient) -> list[dict[str, Any]]:
    return cast(FakeEngine, e).calls


def chat(text: str, model: str = "smollm2") -> GenerateRequest:
    return GenerateRequest(Route.CHAT, {"model": model, "messages": [
        {"role": "user", "content": text}]}, "rid123")


def make(metrics: Metrics | None = None, **settings: Any) -> Decider:
    return Decider(DecisionSettings(**settings), metrics or Metrics())


SIMPLE = "What's the capital of France?"
HARD = "Solve 3x + 7 = 22"


# ---- rules ---------------------------------------------------------------------------


async def test_rules_strategy_never_touches_the_engine() -> None:
    e = engine()
    d = make()
    assert not d.needs_engine
    decision = await d.decide(chat(HARD), e, None)
    assert (decision.mode, decision.strategy) == (Mode.ANALITICO, "rules")
    assert "math" in decision.signals and decision.score is None and decision.applied
    assert (await d.decide(chat(SIMPLE), e, None)).mode is Mode.FLUIDO
    assert calls(e) == []


# ---- entropy -------------------------------------------------------------------------


async def test_entropy_flat_distribution_is_analitico_and_reports_everything() -> None:
    e = engine(positions=(PEAKED, FLAT))
    d = make(strategy="entropy", probe_top_k=10, probe_tokens=2)
    assert d.needs_engine
    decision = await d.decide(chat(SIMPLE, model="alias:latest"), e, None)
    assert decision.mode is Mode.ANALITICO and decision.strategy == "entropy"
    assert decision.score == pytest.approx(1.0) and decision.threshold == 0.6
    assert len(decision.entropies) == 2 and decision.entropies[0] < 0.2
    assert decision.tail_mass == pytest.approx((0.002, 0.0), abs=1e-9)
    assert decision.top_tokens == (PEAKED, FLAT)
    assert decision.probe_latency_ms == 12.5 and decision.signals == ("high_entropy",)
    (call,) = calls(e)
    assert call["top_k"] == 10 and call["tokens"] == 2 and call["rid"] == "rid123-probe"
    # The probe runs on exactly the prompt the generation uses (the engine client maps the
    # model name for both: tests/test_engine_client.py).
    assert call["body"] == chat(SIMPLE, model="alias:latest").body


async def test_entropy_peaked_distribution_is_fluido_even_for_hard_looking_prompts() -> None:
    decision = await make(strategy="entropy").decide(chat(HARD), engine(), None)
    assert decision.mode is Mode.FLUIDO and decision.score is not None
    assert decision.score < 0.6 and decision.signals == ()


async def test_entropy_threshold_is_strictly_above() -> None:
    two = (TopToken("a", math.log(0.5)), TopToken("b", math.log(0.5)))
    d = make(strategy="entropy", entropy_threshold=1.0)
    assert (await d.decide(chat(SIMPLE), engine(positions=(two,)), None)).mode is Mode.FLUIDO


@pytest.mark.parametrize(("error", "prefix", "reason"), [
    (EngineError("engine x answered 500", engine="x"), "probe_failed: EngineError", "failed"),
    (EngineTimeout("engine x did not answer in time", engine="x"), "probe_timeout", "timeout"),
    # Only the kind of error: its text can quote the request or name the engine's address.
    (RuntimeError("bug\nwith newline"), "probe_failed: RuntimeError", "failed"),
])
async def test_failed_probe_falls_back_to_rules(
    error: BaseException, prefix: str, reason: str
) -> None:
    metrics = Metrics()
    d = make(metrics, strategy="entropy")
    decision = await d.decide(chat(HARD), engine(error=error), None)
    assert decision.mode is Mode.ANALITICO and "math" in decision.signals
    assert decision.fallback is not None and decision.fallback.startswith(prefix)
    assert "\n" not in decision.fallback
    assert decision.score is None
    assert metrics.probe_fallbacks.labels(reason)._value.get() == 1


async def test_slow_probe_times_out_within_its_budget() -> None:
    metrics = Metrics()
    d = make(metrics, strategy="entropy", probe_timeout=0.05)
    started = time.monotonic()
    decision = await d.decide(chat(SIMPLE), engine(delay=5.0), None)
    assert time.monotonic() - started < 1.0
    assert decision.fallback == "probe_timeout" and decision.mode is Mode.FLUIDO
    assert metrics.probe_fallbacks.labels("timeout")._value.get() == 1


async def test_probe_never_runs_past_the_request_deadline() -> None:
    e = engine(delay=5.0)
    d = make(strategy="entropy", probe_timeout=10.0)
    started = time.monotonic()
    deadline = time.monotonic() + 0.05
    decision = await d.decide(chat(SIMPLE), e, deadline)
    assert time.monotonic() - started < 1.0 and decision.fallback == "probe_timeout"
    assert calls(e)[0]["deadline"] == deadline
    expired = await d.decide(chat(SIMPLE), engine(), time.monotonic() - 1)
    assert expired.fallback == "probe_timeout"


async def test_unusable_probe_falls_back() -> None:
    metrics = Metrics()
    missing = ((TopToken("a", -math.inf), TopToken("b", -math.inf)),)
    for positions in ((), missing):
        decision = await make(metrics, strategy="entropy").decide(
            chat(HARD), engine(positions=positions), None)
        assert decision.mode is Mode.ANALITICO
        assert decision.fallback == "probe_unusable: no logprobs"
    assert metrics.probe_fallbacks.labels("unusable")._value.get() == 2


async def test_client_cancellation_propagates_through_the_probe() -> None:
    d = make(strategy="entropy", probe_timeout=10.0)
    task = asyncio.ensure_future(d.decide(chat(SIMPLE), engine(delay=5.0), None))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_engine_falls_back() -> None:
    decision = await make(strategy="entropy").decide(chat(SIMPLE), None, None)
    assert decision.fallback == "probe_failed: no engine" and decision.mode is Mode.FLUIDO


# ---- hybrid --------------------------------------------------------------------------


@dataclass(frozen=True)
class HybridCase:
    prompt: str
    positions: tuple[tuple[TopToken, ...], ...]
    mode: Mode
    probed: bool


@pytest.mark.parametrize("case", [
    HybridCase(SIMPLE, (PEAKED,), Mode.FLUIDO, True),      # rules FLUIDO, confident -> FLUIDO
    HybridCase(SIMPLE, (FLAT,), Mode.ANALITICO, True),     # rules FLUIDO, uncertain -> raised
    HybridCase(HARD, (PEAKED,), Mode.ANALITICO, False),    # rules ANALITICO -> no probe
    HybridCase(HARD, (FLAT,), Mode.ANALITICO, False),
], ids=["fluido-peaked", "fluido-flat", "analitico-peaked", "analitico-flat"])
async def test_hybrid_combination(case: HybridCase) -> None:
    e = engine(positions=case.positions)
    decision = await make(strategy="hybrid").decide(chat(case.prompt), e, None)
    assert decision.mode is case.mode and decision.strategy == "hybrid"
    assert bool(calls(e)) is case.probed
    assert (decision.score is not None) is case.probed


async def test_hybrid_probe_failure_keeps_the_rules_verdict() -> None:
    decision = await make(strategy="hybrid").decide(
        chat(SIMPLE), engine(error=EngineError("down", engine="x")), None)
    assert decision.mode is Mode.FLUIDO and decision.fallback is not None


@pytest.mark.parametrize(("strategy", "counted"), [("rules", 0), ("hybrid", 1)])
async def test_rules_analitico_counts_in_the_rate_only_under_a_probing_strategy(
    strategy: str, counted: int
) -> None:
    d = make(strategy=strategy, homeostat=HomeostatSettings(target_rate=0.2))
    assert (await d.decide(chat(HARD), engine(), None)).mode is Mode.ANALITICO
    assert d.homeostat.rate.window == counted


# ---- precedence, shadow, passthrough ---------------------------------------------------


async def test_passthrough_skips_everything() -> None:
    metrics = Metrics()
    e = engine()
    d = make(metrics, mode="passthrough", strategy="entropy")
    assert not d.needs_engine
    assert await d.decide(chat(HARD), e, None, override="analitico") is PASSTHROUGH
    assert calls(e) == [] and metrics.decisions._metrics == {}


@pytest.mark.parametrize("strategy", ["rules", "entropy", "hybrid"])
async def test_override_wins_without_a_probe(strategy: str) -> None:
    e = engine(positions=(FLAT,))
    d = make(strategy=strategy)
    fluido = await d.decide(chat(HARD), e, None, override="fluido")
    analitico = await d.decide(chat(SIMPLE), e, None, override="analitico")
    assert (fluido.mode, fluido.strategy) == (Mode.FLUIDO, "override")
    assert (analitico.mode, analitico.strategy) == (Mode.ANALITICO, "override")
    assert analitico.applied and calls(e) == []


@pytest.mark.parametrize("override", [None, "analitico"])
async def test_housekeeping_is_fluido_without_a_probe(override: str | None) -> None:
    e = engine(positions=(FLAT,))
    request = chat("### Task:\nGenerate a concise, 3-5 word title with an emoji. Solve it "
                   "step by step and output JSON: {\"title\": ...}")
    decision = await make(strategy="entropy").decide(request, e, None, override=override)
    assert (decision.mode, decision.strategy) == (Mode.FLUIDO, "housekeeping")
    assert calls(e) == []


async def test_shadow_reports_but_does_not_apply() -> None:
    metrics = Metrics()
    d = make(metrics, shadow=True)
    decision = await d.decide(chat(HARD), None, None)
    assert decision.mode is Mode.ANALITICO and not decision.applied
    body = chat(HARD).body
    assert d.apply(decision, body) is body
    assert metrics.decisions.labels("ANALITICO", "rules", "false")._value.get() == 1


# ---- reporting -----------------------------------------------------------------------


async def test_one_log_line_and_metrics_per_decision_without_prompt_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    d = make(metrics, strategy="entropy")
    secret = "my secret diary entry about quantum physics"
    with caplog.at_level(logging.DEBUG, logger="lkn.decision"):
        await d.decide(chat(secret), engine(positions=(FLAT,)), None)
    lines = [r.getMessage() for r in caplog.records if r.name == "lkn.decision"]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("decision rid=rid123 engine=fake:1 mode=ANALITICO strategy=entropy")
    assert "score=1.0000" in line and "signals=high_entropy" in line
    assert secret not in line and "quantum" not in line
    assert metrics.decisions.labels("ANALITICO", "entropy", "true")._value.get() == 1
    assert metrics.entropy._sum.get() == pytest.approx(1.0)
    assert metrics.probe_latency._sum.get() == pytest.approx(0.0125)
