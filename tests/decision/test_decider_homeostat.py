"""The decider with its homeostat: shed levels, the tracked threshold, normalised scores."""

from __future__ import annotations

import math
import random
from typing import cast

import pytest

from lkn.config import DecisionSettings, HomeostatSettings
from lkn.decision import Decider
from lkn.decision.homeostat import Load
from lkn.metrics import Metrics
from lkn.values import Mode, TopToken
from tests.decision.test_decider import FLAT, PEAKED, FakeEngine, chat, engine

pytestmark = pytest.mark.fast

HARD = "Solve 3x + 7 = 22"
SIMPLE = "What's the capital of France?"


def decider(**settings: object) -> Decider:
    return Decider(DecisionSettings(**settings), Metrics())  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["rules", "entropy", "hybrid"])
async def test_at_the_in_flight_limit_everything_is_fluido_overrides_included(strategy: str) -> None:
    d = decider(strategy=strategy, homeostat=HomeostatSettings(in_flight_limit=2))
    d.homeostat.watch(lambda: Load(in_flight=2, limit=256))
    e = engine(positions=(FLAT,))
    decision = await d.decide(chat(HARD), e, None)
    assert (decision.mode, decision.shed, decision.signals) == (Mode.FLUIDO, "fluido", ("shed",))
    assert cast(FakeEngine, e).calls == []
    forced = await d.decide(chat(SIMPLE), e, None, override="analitico")
    assert (forced.mode, forced.shed, forced.signals) == (Mode.FLUIDO, "fluido",
                                                          ("override", "shed"))
    assert (await d.decide(chat(SIMPLE), e, None, override="fluido")).mode is Mode.FLUIDO


async def test_cheaper_level_skips_the_separate_probe_and_keeps_the_rules() -> None:
    d = decider(strategy="entropy", homeostat=HomeostatSettings(queue_set_point=4))
    d.homeostat.observe_queue(5)
    e = engine(positions=(FLAT,))
    decision = await d.decide(chat(HARD), e, None)
    assert decision.mode is Mode.ANALITICO and "math" in decision.signals
    assert decision.shed == "cheaper" and decision.fallback == "shed: probe skipped"
    assert cast(FakeEngine, e).calls == []
    d.homeostat.observe_queue(0)
    assert (await d.decide(chat(SIMPLE), e, None)).shed == "cheaper"  # restored after dwell


@pytest.mark.parametrize("care, shed", [
    ("consistency", "prompt:suffix"), ("sampling+consistency:3", "sampling+prompt:suffix"),
    ("prompt:system", "prompt:suffix"), ("sampling", "sampling"),
    ("prompt:suffix", "prompt:suffix"),
])
async def test_cheaper_level_sheds_to_cheaper_interventions(care: str, shed: str) -> None:
    d = decider(strategy="rules", care_intervention=care,
                homeostat=HomeostatSettings(queue_set_point=4))
    calm = await d.decide(chat(HARD), None, None)
    assert (calm.mode, calm.intervention, calm.shed) == (Mode.ANALITICO, d.chooser.default.name,
                                                         None)
    d.homeostat.observe_queue(5)
    decision = await d.decide(chat(HARD), None, None)
    assert (decision.mode, decision.intervention, decision.shed) == (Mode.ANALITICO, shed,
                                                                     "cheaper")
    body = d.apply(decision, chat(HARD).body)
    assert body.get("n") is None  # one answer: no vote
    if "prompt" in shed:  # the instruction follows the conversation, the prefix is untouched
        assert body["messages"][:-1] == chat(HARD).body["messages"][:-1]
        assert body["messages"][-1]["content"].endswith(d.settings.intervention)
    # An explicit client choice is shed like any other care.
    forced = await d.decide(chat(SIMPLE), None, None, override="analitico")
    assert (forced.intervention, forced.shed) == (shed, "cheaper")


async def test_shedding_off_never_sheds() -> None:
    d = decider(strategy="entropy", homeostat=HomeostatSettings(shed=False))
    d.homeostat.observe_queue(1000)
    decision = await d.decide(chat(SIMPLE), engine(positions=(PEAKED,)), None)
    assert decision.shed is None and decision.score is not None


async def test_entropy_decisions_follow_the_target_rate() -> None:
    d = decider(strategy="entropy", score_normalise=False,
                homeostat=HomeostatSettings(target_rate=0.25, dwell=0.0))
    rnd = random.Random(5)
    analitico = 0
    for i in range(400):
        p = rnd.uniform(0.34, 0.98)
        rest = (1.0 - p) / 2
        top = (TopToken("a", math.log(p)), TopToken("b", math.log(rest)),
               TopToken("c", math.log(rest)))
        decision = await d.decide(chat(SIMPLE), engine(positions=(top,)), None)
        if i >= 100:
            analitico += decision.mode is Mode.ANALITICO
    assert analitico / 300 == pytest.approx(0.25, abs=0.06)
    assert decision.threshold == d.homeostat.threshold != 0.6
    assert decision.raw_score == decision.score


async def test_normalised_score_reports_raw_score_and_group() -> None:
    d = decider(strategy="entropy")
    for _ in range(40):
        decision = await d.decide(chat(SIMPLE), engine(positions=(PEAKED,)), None)
    assert decision.score_group == "en/plain"
    assert decision.raw_score is not None and decision.score == pytest.approx(0.5)
