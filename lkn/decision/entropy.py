"""Normalised Shannon entropy of an engine's top-K logprobs (the seed's formula), no I/O.

Per probed position: keep the top-K probabilities, renormalise them, ``H = -sum p log2 p``,
``H_norm = H / log2(K)`` in [0, 1]. Missing logprobs (None, -inf, NaN) count as zero
probability but still count in K; a position where every logprob is missing is unusable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lkn.types import TopToken


@dataclass(frozen=True)
class EntropyReading:
    """What a probe's logprobs say about the engine's uncertainty."""

    #: Max normalised entropy over the usable positions: the decision's score.
    score: float
    #: Normalised entropy per position (NaN where the position was unusable).
    entropies: tuple[float, ...]
    #: Probability mass outside the top K, per position, in [0, 1].
    tail_mass: tuple[float, ...]


def _probabilities(logprobs: Sequence[float | None]) -> list[float]:
    """exp(logprob) per entry; anything missing or non-finite is zero probability."""
    probs: list[float] = []
    for lp in logprobs:
        if lp is None or math.isnan(lp) or lp == -math.inf:
            probs.append(0.0)
        else:
            # A logprob can exceed 0 by float noise; a probability cannot exceed 1.
            probs.append(math.exp(min(lp, 0.0)))
    return probs


def normalized_entropy(logprobs: Sequence[float | None]) -> float | None:
    """``H / log2(K)`` of the renormalised top-K distribution; None when it is unusable.

    ``K`` is the number of alternatives given (missing ones included). ``K == 1`` gives 0.0.
    """
    probs = _probabilities(logprobs)
    total = sum(probs)
    if not probs or total <= 0.0:
        return None
    k = len(probs)
    if k == 1:
        return 0.0
    h = 0.0
    for q in probs:
        if q > 0.0:
            p = q / total
            h -= p * math.log2(p)
    return min(1.0, max(0.0, h / math.log2(k)))


def tail_mass(logprobs: Sequence[float | None]) -> float:
    """``1 - sum(exp(logprob))`` clamped to [0, 1]: the mass the top K do not cover."""
    return min(1.0, max(0.0, 1.0 - sum(_probabilities(logprobs))))


def read_positions(positions: Sequence[Sequence[TopToken]]) -> EntropyReading | None:
    """Score a probe's positions; None when no position is usable (the probe tells nothing)."""
    entropies: list[float] = []
    tails: list[float] = []
    usable: list[float] = []
    for position in positions:
        logprobs = [t.logprob for t in position]
        value = normalized_entropy(logprobs)
        entropies.append(math.nan if value is None else value)
        tails.append(tail_mass(logprobs))
        if value is not None:
            usable.append(value)
    if not usable:
        return None
    return EntropyReading(max(usable), tuple(entropies), tuple(tails))
