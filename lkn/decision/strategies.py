"""The decision strategies (``LKN_DECISION_STRATEGY``): one class each, chosen once at start-up.

``rules`` decides by the request's own signals (:mod:`.rules`), never calling the engine.
``entropy`` decides by the engine's uncertainty over its first answer tokens (a probe,
:mod:`.probe`, or the held generation, :mod:`lkn.speculative`); ``hybrid`` keeps the rules'
ANALITICO and asks the probe only about the rest, keeping the rules' signals. Both fall back
to the rules when the probe fails or the homeostat sheds it.

Decisions no strategy makes carry labels of their own in ``Decision.strategy``:
housekeeping, passthrough (no care at all: :func:`gets_care`) and the client's override
(:func:`client_chose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lkn.decision.entropy import EntropyReading
from lkn.decision.homeostat import Judgement
from lkn.decision.rules import RuleVerdict
from lkn.values import Decision, Mode, ProbeResult

PASSTHROUGH = "passthrough"


@dataclass(frozen=True)
class Probed:
    """A usable probe of the request and the homeostat's judgement of its score."""

    result: ProbeResult
    reading: EntropyReading
    judged: Judgement


class Strategy(Protocol):
    """What the decider asks of a strategy."""

    #: The label decisions carry (``X-LKN-Strategy``, metrics, logs).
    name: str
    #: Whether its decisions may read the engine's logprobs: the decider then needs the
    #: generating engine, the generation itself may stand in for the probe
    #: (:mod:`lkn.speculative`), and the homeostat's rate counts its decisions.
    probes: bool

    def wants_probe(self, verdict: RuleVerdict) -> bool:
        """Whether a probe decides this request (else the rules' verdict stands); a probe the
        homeostat sheds, or one that fails, leaves the rules' verdict."""

    def decide(self, verdict: RuleVerdict, probed: Probed | None, applied: bool) -> Decision:
        """The decision for the rules' ``verdict`` and, when one was read, the probe."""


def by_rules(name: str, verdict: RuleVerdict, applied: bool) -> Decision:
    """The rules' verdict as a decision of strategy ``name``."""
    return Decision(verdict.mode, name, signals=verdict.signals, applied=applied)


def by_probe(name: str, signals: tuple[str, ...], probed: Probed, applied: bool) -> Decision:
    """ANALITICO when the probe's score is above the threshold (``high_entropy``)."""
    judged, reading, result = probed.judged, probed.reading, probed.result
    return Decision(
        Mode.ANALITICO if judged.uncertain else Mode.FLUIDO,
        name,
        score=judged.score,
        raw_score=reading.score,
        score_group=judged.group,
        threshold=judged.threshold,
        signals=(*signals, "high_entropy") if judged.uncertain else signals,
        entropies=reading.entropies,
        tail_mass=reading.tail_mass,
        top_tokens=result.positions,
        probe_latency_ms=result.latency_ms,
        applied=applied,
    )


class RulesStrategy:
    name = "rules"
    probes = False

    def wants_probe(self, verdict: RuleVerdict) -> bool:
        return False

    def decide(self, verdict: RuleVerdict, probed: Probed | None, applied: bool) -> Decision:
        return by_rules(self.name, verdict, applied)


class EntropyStrategy:
    """The probe alone: its decisions carry no rule signal."""

    name = "entropy"
    probes = True

    def wants_probe(self, verdict: RuleVerdict) -> bool:
        return True

    def decide(self, verdict: RuleVerdict, probed: Probed | None, applied: bool) -> Decision:
        if probed is None:
            return by_rules(self.name, verdict, applied)
        return by_probe(self.name, (), probed, applied)


class HybridStrategy:
    """The rules' ANALITICO stands; the probe decides the rest, with the rules' signals."""

    name = "hybrid"
    probes = True

    def wants_probe(self, verdict: RuleVerdict) -> bool:
        return verdict.mode is not Mode.ANALITICO

    def decide(self, verdict: RuleVerdict, probed: Probed | None, applied: bool) -> Decision:
        if probed is None:
            return by_rules(self.name, verdict, applied)
        return by_probe(self.name, verdict.signals, probed, applied)


_STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (RulesStrategy(), EntropyStrategy(), HybridStrategy())
}


def strategy_named(name: str) -> Strategy:
    """The strategy a setting names (each one is stateless and shared); raises ``ValueError``."""
    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown decision strategy {name!r}") from None

