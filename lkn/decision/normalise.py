"""Scores made comparable across languages and request kinds: rank within one's own group.

A raw entropy score depends on the language of the answer (Spanish tokens are less sure on
a small model) and on what is asked, so a single threshold mostly separates languages. The
normaliser keeps, per group (language, rules category), the last ``window`` raw scores and
reports a score as its mid-rank among them, in [0, 1]: 0.8 means "less sure than 80 % of
recent requests of its own kind". A group with fewer than ``min_samples`` scores borrows
its language's scores; a language with too few gives the raw score back unchanged.
Pure and synchronous (no clock, no I/O); one instance per gateway.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

_CATEGORIES = (
    ("code", ("code_fence", "stack_trace", "code", "code_topic", "code_request")),
    ("math", ("math", "math_words", "word_problem", "proof", "counting_probability")),
    ("multi_step", ("multi_step", "reasoning_cue")),
    ("long", ("long_prompt",)),
)


def category_of(signals: tuple[str, ...]) -> str:
    """The rules category of a request, from the rules' signals (``plain`` when none)."""
    for name, members in _CATEGORIES:
        if any(signal in members for signal in signals):
            return name
    return "plain"


class _Ranks:
    """The last ``size`` values, in arrival order and sorted."""

    def __init__(self, size: int) -> None:
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._size = size

    def __len__(self) -> int:
        return len(self._order)

    def add(self, value: float) -> None:
        if len(self._order) == self._size:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._order.append(value)
        bisect.insort(self._sorted, value)

    def rank(self, value: float) -> float:
        below = bisect.bisect_left(self._sorted, value)
        equal = bisect.bisect_right(self._sorted, value) - below
        return (below + 0.5 * equal) / len(self._sorted)


#: The group of a score given back unranked (its language has too few yet).
RAW = "raw"


@dataclass(frozen=True)
class Normalised:
    score: float
    #: The group whose scores ranked it: ``"es/math"``, ``"es/*"``, or ``"raw"``.
    group: str


class ScoreNormaliser:
    def __init__(self, window: int = 500, min_samples: int = 30) -> None:
        if window < 1 or min_samples < 1:
            raise ValueError("window and min_samples must be positive")
        self._window = window
        self._min = min_samples
        self._groups: dict[tuple[str, str], _Ranks] = {}

    def _ranks(self, key: tuple[str, str]) -> _Ranks:
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = _Ranks(self._window)
        return found

    def normalise(self, raw: float, language: str, category: str) -> Normalised:
        """Rank ``raw`` among earlier scores of its group, then remember it."""
        group = self._ranks((language, category))
        whole = self._ranks((language, "*"))
        if len(group) >= self._min:
            result = Normalised(group.rank(raw), f"{language}/{category}")
        elif len(whole) >= self._min:
            result = Normalised(whole.rank(raw), f"{language}/*")
        else:
            result = Normalised(raw, RAW)
        group.add(raw)
        whole.add(raw)
        return result

    def counts(self) -> dict[str, int]:
        """How many scores each group holds (for status pages and tests)."""
        return {f"{lang}/{cat}": len(r) for (lang, cat), r in sorted(self._groups.items())}
