"""Threshold calibration maths: pick the entropy threshold that gives a target ANALITICO rate.

A request is ANALITICO when its score is *above* the threshold, so the threshold for a rate
``r`` is the ``(1 - r)`` quantile of observed scores (linear interpolation between order
statistics, as numpy's default). Pure functions; the probing lives in :mod:`.survey`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; raises on empty input."""
    return quantile_of_sorted(sorted(values), q)


def quantile_of_sorted(ordered: Sequence[float], q: float) -> float:
    """:func:`quantile` of values already in ascending order (no sort, no copy)."""
    if not ordered:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def threshold_for_rate(scores: Sequence[float], rate: float) -> float:
    """The threshold (in [0, 1]) above which about ``rate`` of ``scores`` lie."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"target rate {rate} is outside [0, 1]")
    return min(1.0, max(0.0, quantile(scores, 1.0 - rate)))


def analitico_rate(scores: Sequence[float], threshold: float) -> float:
    """The fraction of ``scores`` strictly above ``threshold`` (what the decider would do)."""
    if not scores:
        return 0.0
    return sum(1 for s in scores if s > threshold) / len(scores)


@dataclass(frozen=True)
class Calibration:
    count: int
    target_rate: float
    threshold: float
    achieved_rate: float
    minimum: float
    maximum: float
    mean: float
    percentiles: tuple[tuple[int, float], ...]


def calibrate(scores: Sequence[float], target_rate: float) -> Calibration:
    threshold = threshold_for_rate(scores, target_rate)
    return Calibration(
        count=len(scores),
        target_rate=target_rate,
        threshold=threshold,
        achieved_rate=analitico_rate(scores, threshold),
        minimum=min(scores),
        maximum=max(scores),
        mean=sum(scores) / len(scores),
        percentiles=tuple((p, quantile(scores, p / 100.0)) for p in PERCENTILES),
    )


def histogram(scores: Sequence[float], bins: int = 10, width: int = 40) -> list[str]:
    """A text histogram of scores over [0, 1], one line per bin."""
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(score * bins)))] += 1
    peak = max(counts) if counts and max(counts) > 0 else 1
    lines = []
    for i, count in enumerate(counts):
        bar = "#" * math.ceil(count * width / peak) if count else ""
        lines.append(f"  [{i / bins:.2f}, {(i + 1) / bins:.2f}{']' if i == bins - 1 else ')'}"
                     f" {count:6d} {bar}")
    return lines


def report(result: Calibration, scores: Sequence[float]) -> str:
    """The calibration as text for a terminal."""
    lines = [
        f"prompts scored:   {result.count}",
        f"target rate:      {result.target_rate:.1%} ANALITICO",
        f"threshold:        {result.threshold:.4f}  "
        f"(gives {result.achieved_rate:.1%} on these prompts)",
    ]
    if abs(result.achieved_rate - result.target_rate) > 0.05:
        lines.append("note: many prompts share a score, so no threshold gives the exact rate")
    lines += [
        "",
        "normalised entropy (max over probed tokens):",
        f"  min {result.minimum:.4f}  mean {result.mean:.4f}  max {result.maximum:.4f}",
        "  " + "  ".join(f"p{p} {v:.4f}" for p, v in result.percentiles),
        "",
        *histogram(scores),
        "",
        f"LKN_ENTROPY_THRESHOLD={result.threshold:.4f}",
    ]
    return "\n".join(lines)
