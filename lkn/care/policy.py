"""A care policy: which intervention a request gets for its rule signals (and entropy range).

Written by ``lkn eval --choose`` from measurements on the served model, loaded at start-up
(``LKN_POLICY``). The file is JSON::

    {"format": "lkn-policy/1", "name": "...", "model": "...", "significance": 0.05,
     "measured": {...},
     "rules": [{"signals": ["math", "math_words"], "intervention": "sampling",
                "entropy": [0.0, 1.0], "why": "...", "evidence": {...}}, ...],
     "rejected": [...]}

A rule matches a decision when one of its ``signals`` is among the decision's signals
(``"*"``: any risk signal; ``"none"``: no risk signal; ``"all"``: every request; the form
signal ``open_ended`` is named like a signal but is no risk) and, if it has an ``entropy``
range, the decision's score lies in it. The first matching rule wins; no match means no intervention.
``rejected`` and ``evidence`` are kept for people (the probe and ``/ready`` show the why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lkn.care import specs
from lkn.care.specs import NONE, Intervention
from lkn.values import risk_signals

FORMAT = "lkn-policy/1"
ANY = "*"
NO_SIGNAL = "none"
ALL = "all"


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Rule:
    signals: tuple[str, ...]
    intervention: Intervention
    entropy: tuple[float, float] | None
    why: str

    def matches(self, signals: tuple[str, ...], score: float | None) -> bool:
        risk = risk_signals(signals)
        hit = (ALL in self.signals
               or any(s in signals for s in self.signals)
               or (ANY in self.signals and bool(risk))
               or (NO_SIGNAL in self.signals and not risk))
        if not hit:
            return False
        if self.entropy is None:
            return True
        return score is not None and self.entropy[0] <= score <= self.entropy[1]

    def describe(self) -> str:
        when = ",".join(self.signals)
        if self.entropy is not None:
            when += f" entropy[{self.entropy[0]:g},{self.entropy[1]:g}]"
        return f"{when} -> {self.intervention.name}"


@dataclass(frozen=True)
class Policy:
    name: str
    model: str
    source: str
    significance: float
    rules: tuple[Rule, ...]
    summary: dict[str, Any]

    @property
    def default(self) -> Intervention:
        """The model's default treatment: what the first rule for every request applies
        (``all``, no entropy range), or none. A request given only this is not given care.
        Where an earlier rule gives some requests nothing (compositions: ``open_ended ->
        none``), it is not what every request gets: then it is care, and the default none."""
        for index, rule in enumerate(self.rules):
            if ALL in rule.signals and rule.entropy is None:
                bare = any(not r.intervention.active for r in self.rules[:index])
                return NONE if bare else rule.intervention
        return NONE

    def choose(self, signals: tuple[str, ...], score: float | None) -> tuple[Intervention, str]:
        """The intervention for a decision's signals and score, and the rule that chose it."""
        for index, rule in enumerate(self.rules):
            if rule.matches(signals, score):
                return rule.intervention, f"{self.name}#{index}: {rule.describe()}"
        return NONE, f"{self.name}: no rule matches"

    def describe(self) -> dict[str, Any]:
        """What ``/ready`` and the probe show: the policy and why it is what it is."""
        return {
            "name": self.name, "model": self.model, "file": self.source,
            "significance": self.significance,
            "rules": [{"when": r.describe(), "why": r.why} for r in self.rules],
            **self.summary,
        }


def _field(record: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind):
        raise PolicyError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _span(entropy: Any, where: str) -> tuple[float, float] | None:
    """A rule's ``entropy`` range, checked."""
    if entropy is None:
        return None
    if (not isinstance(entropy, list) or len(entropy) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in entropy)
            or not 0.0 <= entropy[0] <= entropy[1] <= 1.0):
        raise PolicyError(f"{where}: 'entropy' must be [low, high] within [0, 1]")
    return float(entropy[0]), float(entropy[1])


def _rule(raw: Any, where: str, placement: str, k: int) -> Rule:
    """One entry of a policy's ``rules``, checked."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be an object")
    signals = _field(raw, "signals", list, where)
    if not signals or not all(isinstance(s, str) and s for s in signals):
        raise PolicyError(f"{where}: 'signals' must be a non-empty list of names")
    try:
        intervention = specs.parse(_field(raw, "intervention", str, where),
                                           placement, k)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    span = _span(raw.get("entropy"), where)
    return Rule(tuple(signals), intervention, span, str(raw.get("why", "")))


def parse_policy(data: Any, source: str, placement: str = "system", k: int = 5) -> Policy:
    """Validate a decoded policy file; raises :class:`PolicyError` naming the bad field."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a JSON object")
    if data.get("format") != FORMAT:
        raise PolicyError(f"{source}: 'format' must be {FORMAT!r}")
    raw_rules = _field(data, "rules", list, source)
    rules = [_rule(raw, f"{source}: rules[{index}]", placement, k)
             for index, raw in enumerate(raw_rules)]
    significance = data.get("significance", 0.05)
    if not isinstance(significance, (int, float)) or not 0.0 < significance < 1.0:
        raise PolicyError(f"{source}: 'significance' must be a number between 0 and 1")
    summary = {key: data[key] for key in ("measured", "rejected", "notes") if key in data}
    return Policy(
        name=str(data.get("name") or Path(source).stem), model=str(data.get("model", "")),
        source=source, significance=float(significance), rules=tuple(rules), summary=summary,
    )


def load_policy(path: Path, placement: str = "system", k: int = 5) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"{path}: not valid JSON ({exc})") from None
    return parse_policy(data, str(path), placement, k)
