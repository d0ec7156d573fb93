"""The loop guard: notices an answer that has started to repeat itself (a degenerate loop).

Greedy decoding of small models falls into loops that never reach an end-of-sequence token
("Paso 41: 12 ... Paso 165: 7"). The guard watches the generated text as it streams and says
when the tail of the answer is one period repeated back to back:

* every ``check_every`` characters, the smallest period of every suffix of the last
  ``window`` characters is found with the prefix function (Knuth-Morris-Pratt) of the
  reversed tail: O(window) per check, so O(window / check_every) per character, whatever
  the answer's length, and at most ``window + check_every`` characters kept (plus one
  piece);
* a suffix of ``L`` characters with period ``p`` is a loop when ``L >= min_chars`` and it
  holds ``repeats`` exact copies of its period, or only two when the period is long (at
  least ``min_chars / 2`` characters): a sentence or a paragraph said twice back to back,
  word for word, is already a loop, and waiting for four copies of a 200-character
  paragraph would show the user 600 repeated characters.

Only exact repeats count. A loop that counts ("Paso 41: 12", "Paso 42: 12", ...) differs
in its digits between repeats, exactly as a table or a CSV whose rows differ only in their
numbers does; telling those apart was tried (runs of digits made equal) and stopped tables
and code, so such loops are left to the answer budget (``LKN_DEFAULT_MAX_TOKENS``).

What it does not stop: numbered lists, tables, code with similar lines and poems with a
refrain all change something between their repeats (the words of the item, a verse), so no
long suffix of them is periodic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSettings:
    """What counts as a loop (``LKN_LOOP_WINDOW``, ``LKN_LOOP_REPEATS``,
    ``LKN_LOOP_MIN_CHARS``; the check's period is fixed)."""

    window: int = 1024
    repeats: int = 4
    min_chars: int = 160
    check_every: int = 32


@dataclass(frozen=True)
class Loop:
    """A loop found at the tail: its period and the repeated span, in characters."""

    period: int
    span: int


def _smallest_periods(text: str) -> list[int]:
    """``out[L - 1]``: the smallest period of ``text[:L]`` (the prefix function's complement)."""
    n = len(text)
    pi = [0] * n
    k = 0
    for i in range(1, n):
        c = text[i]
        while k and text[k] != c:
            k = pi[k - 1]
        if text[k] == c:
            k += 1
        pi[i] = k
    return [length - pi[length - 1] for length in range(1, n + 1)]


def find_loop(tail: str, settings: LoopSettings) -> Loop | None:
    """The longest loop ending at the end of ``tail``, or None."""
    reversed_tail = tail[::-1]
    periods = _smallest_periods(reversed_tail)
    for length in range(len(reversed_tail), settings.min_chars - 1, -1):
        period = periods[length - 1]
        # A long period (half the minimum span or more) is a loop once it is said twice.
        copies = 2 if 2 * period >= settings.min_chars else settings.repeats
        if length < period * copies:
            continue
        return Loop(period, length)
    return None


class LoopGuard:
    """Fed the answer's text piece by piece; :meth:`feed` returns the loop once it is seen."""

    __slots__ = ("settings", "_tail", "_size", "_since", "loop")

    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._tail: list[str] = []
        self._size = 0
        self._since = 0
        self.loop: Loop | None = None

    def feed(self, text: str) -> Loop | None:
        if not text or self.loop is not None:
            return self.loop
        settings = self.settings
        self._tail.append(text)
        self._size += len(text)
        self._since += len(text)
        if self._since < settings.check_every or self._size < settings.min_chars:
            return None
        self._since = 0
        tail = "".join(self._tail)[-settings.window:]
        self._tail, self._size = [tail], len(tail)
        self.loop = find_loop(tail, settings)
        return self.loop


__all__ = ["Loop", "LoopGuard", "LoopSettings", "find_loop"]
