"""The strategies behind one interface, chosen once from the settings."""

from __future__ import annotations

import pytest

from lkn.config import STRATEGIES, DecisionSettings
from lkn.decision import Decider
from lkn.decision.rules import RuleVerdict
from lkn.decision.strategies import strategy_named
from lkn.metrics import Metrics
from lkn.values import PASSTHROUGH, Decision, Mode

pytestmark = pytest.mark.fast

FLUIDO = RuleVerdict(Mode.FLUIDO, (), 3)
ANALITICO = RuleVerdict(Mode.ANALITICO, ("math",), 3)


def test_every_configurable_strategy_has_a_class_and_the_decider_holds_it() -> None:
    for name in STRATEGIES:
        assert strategy_named(name).name == name
        decider = Decider(DecisionSettings(strategy=name), Metrics())
        assert decider.strategy is strategy_named(name)
    with pytest.raises(ValueError, match="unknown decision strategy"):
        strategy_named("oracle")


@pytest.mark.parametrize(("name", "probes", "fluido", "analitico"), [
    ("rules", False, False, False),
    ("entropy", True, True, True),
    ("hybrid", True, True, False),
])
def test_what_each_strategy_probes(name: str, probes: bool, fluido: bool, analitico: bool) -> None:
    strategy = strategy_named(name)
    assert strategy.probes is probes
    assert (strategy.wants_probe(FLUIDO), strategy.wants_probe(ANALITICO)) == (fluido, analitico)


@pytest.mark.parametrize("name", STRATEGIES)
def test_without_a_probe_every_strategy_gives_the_rules_verdict(name: str) -> None:
    decision = strategy_named(name).decide(ANALITICO, None, applied=False)
    assert decision == Decision(Mode.ANALITICO, name, signals=("math",), applied=False)


def test_labels_of_decisions_no_strategy_makes() -> None:
    assert not PASSTHROUGH.gets_care and not Decision(Mode.FLUIDO, "housekeeping").gets_care
    assert Decision(Mode.FLUIDO, "override").gets_care and Decision(Mode.FLUIDO, "rules").gets_care
    assert Decision(Mode.ANALITICO, "override").client_chose
    assert not Decision(Mode.ANALITICO, "hybrid").client_chose
