"""What the harness compares: an *arm* is how one request is sent to the gateway.

An arm is written ``<care>@<shape>``:

- care: ``fluido`` (the ``X-LKN-Mode: fluido`` override), ``analitico`` (the override: the
  intervention the gateway is configured with), ``gateway`` (no override: the policy in
  force decides), or an intervention spec (``prompt``, ``prompt:suffix``, ``sampling``,
  ``sampling+prompt``, ``consistency`` ...) sent as ``X-LKN-Intervention``.
- shape: ``greedy`` (the client sends ``temperature: 0``) or ``webui`` (no sampling field at
  all, exactly what Open WebUI sends, so the engine's default sampling applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHAPES = ("greedy", "webui")
BASELINE = "fluido@greedy"


@dataclass(frozen=True)
class Arm:
    name: str
    care: str
    shape: str

    @property
    def headers(self) -> dict[str, str]:
        if self.care in ("fluido", "analitico"):
            return {"X-LKN-Mode": self.care}
        if self.care == "gateway":
            return {}
        return {"X-LKN-Intervention": self.care}

    def sampling(self) -> dict[str, float]:
        """The sampling fields the client sends."""
        return {"temperature": 0.0} if self.shape == "greedy" else {}

    @property
    def same_shape_baseline(self) -> str:
        return same_shape_baseline(self.name)


def same_shape_baseline(arm: str) -> str:
    """FLUIDO in the client shape of the arm named ``arm`` (``x@webui`` -> ``fluido@webui``)."""
    return "fluido@" + arm.partition("@")[2]


def parse_arm(text: str) -> Arm:
    """``care@shape`` (shape defaults to greedy); raises ``ValueError`` on a bad spec."""
    care, _, shape = text.strip().partition("@")
    care = care.strip().lower()
    shape = (shape or "greedy").strip().lower()
    if not care:
        raise ValueError(f"arm {text!r} has no care part (e.g. fluido@greedy)")
    if shape not in SHAPES:
        raise ValueError(f"arm {text!r}: shape must be one of {', '.join(SHAPES)}")
    return Arm(f"{care}@{shape}", care, shape)


#: A comma starts a new arm only before a care's name: ``sampling:t=0.3,min_p=0.1@webui``
#: is one arm.
_NEXT_ARM = re.compile(r",(?=\s*(?:fluido|analitico|gateway|none|prompt|sampling|consistency)\b)")


def parse_arms(text: str) -> list[Arm]:
    arms = [parse_arm(part) for part in _NEXT_ARM.split(text) if part.strip()]
    if not arms:
        raise ValueError("no arm given")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError("an arm is listed twice")
    return arms
