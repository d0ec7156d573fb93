"""Small statistics for paired accuracy: Wilson intervals and the exact McNemar test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 0) for no trials."""
    if total <= 0:
        return (0.0, 0.0)
    p = successes / total
    denominator = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Paired:
    #: Items right only with the candidate, and right only with the baseline.
    wins: int
    losses: int
    p_value: float

    @property
    def better(self) -> bool:
        return self.wins > self.losses


def mcnemar(candidate: Sequence[bool], baseline: Sequence[bool]) -> Paired:
    """Exact two-sided McNemar test (binomial on the discordant pairs)."""
    if len(candidate) != len(baseline):
        raise ValueError("paired samples must have the same length")
    wins = sum(1 for c, b in zip(candidate, baseline) if c and not b)
    losses = sum(1 for c, b in zip(candidate, baseline) if b and not c)
    n = wins + losses
    if n == 0:
        return Paired(0, 0, 1.0)
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return Paired(wins, losses, min(1.0, 2.0 * tail))
