"""Uncertainty of an engine's first answer tokens from their top-K logprobs, no I/O.

Per position: keep the top-K probabilities, renormalise them, ``H = -sum p log2 p``,
``H_norm = H / log2(K)`` in [0, 1] (the seed's formula). Missing logprobs (None, -inf, NaN)
count as zero probability but still count in K; a position where every logprob is missing is
unusable.

Positions whose token carries no answer (whitespace, markdown marks, a leading article such
as "The" or "El") are left out of the score: the model's doubt between "The" and "Paris" is
about style, not about the answer. When every usable position is such a token, all of them
count. Four features are read over the answer positions, each in [0, 1], higher meaning
less sure: ``max`` and ``mean`` normalised entropy, ``margin`` (one minus the smallest gap
between the two likeliest tokens) and ``tail`` (the largest probability mass outside the
top K). ``score`` is the feature the settings name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from lkn.values import TopToken


@dataclass(frozen=True)
class EntropyReading:
    """What a probe's logprobs say about the engine's uncertainty."""

    #: Max normalised entropy over the usable positions: the decision's score.
    score: float
    #: Normalised entropy per position (NaN where the position was unusable).
    entropies: tuple[float, ...]
    #: Probability mass outside the top K, per position, in [0, 1].
    tail_mass: tuple[float, ...]
    #: Indices of the positions the score was read from (answer-carrying and usable).
    used: tuple[int, ...] = ()
    #: Every feature by name (see :data:`FEATURES`).
    features: dict[str, float] = field(default_factory=dict)


#: The features a score can use, in the order they are reported.
FEATURES = ("max", "mean", "margin", "tail")

#: Tokens that open an answer without saying anything (English and Spanish articles).
_FILLERS = frozenset({
    "the", "a", "an", "el", "la", "los", "las", "lo", "un", "una", "unos", "unas",
})
#: Markdown and list marks, quotes and punctuation only.
_MARKS = re.compile(r"[\s#*_`~>|:\-=+.,;!?¡¿\"'()\[\]{}•·]*")


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


def carries_answer(token: str) -> bool:
    """False for whitespace, markdown or punctuation marks, and a bare article."""
    if _MARKS.fullmatch(token) is not None:
        return False
    return token.strip().lower() not in _FILLERS


def top_margin(logprobs: Sequence[float | None]) -> float:
    """``p1 - p2`` of the two likeliest alternatives (``p1`` alone when there is one)."""
    probs = sorted(_probabilities(logprobs), reverse=True)
    if not probs:
        return 0.0
    return probs[0] - (probs[1] if len(probs) > 1 else 0.0)


class _Position(NamedTuple):
    entropy: float | None  # None: unusable
    tail: float
    margin: float
    answer: bool


def _position(position: Sequence[TopToken], chosen: str | None) -> _Position:
    """One position read; ``chosen`` is its generated token (else the likeliest one)."""
    logprobs = [t.logprob for t in position]
    value = normalized_entropy(logprobs)
    answer = value is not None and carries_answer(
        chosen if chosen is not None else max(position, key=lambda t: t.logprob).token)
    return _Position(value, tail_mass(logprobs), top_margin(logprobs), answer)


def read_positions(
    positions: Sequence[Sequence[TopToken]],
    chosen: Sequence[str] | None = None,
    feature: str = "max",
) -> EntropyReading | None:
    """Score a probe's positions; None when no position is usable (the probe tells nothing).

    ``chosen`` is the token generated at each position (a sampled generation may not pick
    the likeliest); without it the likeliest alternative is taken, as a greedy probe does.
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown score feature {feature!r}")
    read = [_position(position, chosen[i] if chosen is not None and i < len(chosen) else None)
            for i, position in enumerate(positions)]  # fmt: skip
    usable = [i for i, r in enumerate(read) if r.entropy is not None]
    if not usable:
        return None
    used = [i for i in usable if read[i].answer] or usable
    entropies = tuple(math.nan if r.entropy is None else r.entropy for r in read)
    features = {
        "max": max(entropies[i] for i in used),
        "mean": sum(entropies[i] for i in used) / len(used),
        "margin": 1.0 - min(read[i].margin for i in used),
        "tail": max(read[i].tail for i in used),
    }
    return EntropyReading(
        features[feature], entropies, tuple(r.tail for r in read), tuple(used), features
    )
