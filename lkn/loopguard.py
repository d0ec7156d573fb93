"""The loop guard: notices an answer that has started to repeat itself (a degenerate loop).

Greedy decoding of small models falls into loops that never reach an end-of-sequence token
("Paso 41: 12 ... Paso 165: 7"). The guard watches the generated text as it streams and says
when the tail of the answer is one period repeated back to back:

* every ``check_every`` characters, the smallest period of every suffix of the last
  ``window`` characters is found with the prefix function (Knuth-Morris-Pratt) of the
  reversed tail: O(window) per check, so O(window / check_every) per character, whatever
  the answer's length, and at most ``window + check_every`` characters kept (plus one
  piece). A necessary condition comes first, in C (``str.find``): the last
  ``min_chars // 2`` characters must occur once more in the window; on text that does not
  repeat itself that is the whole check (1.3 µs per 4-character token, against 18.5 µs
  for the prefix function at every check); where it passes, string searches and
  comparisons in C find what the prefix function would (``_searched``: 10 against 44 µs on
  a 256-character tail that counts), and the prefix function is left the rare tails they
  do not settle in a few tries;
* a suffix of ``L`` characters with period ``p`` is a loop when ``L >= min_chars`` and it
  holds ``repeats`` exact copies of its period, or only two when the period is long (at
  least ``min_chars / 2`` characters): a sentence or a paragraph said twice back to back,
  word for word, is already a loop, and waiting for three copies of a 200-character
  paragraph would show the user 400 repeated characters. The defaults (80 characters,
  three copies) were chosen on the labelled set of ``scripts/loop_set.py``: Spanish from a
  small model runs at about 1.3 characters per token, so a threshold in characters must be
  low for a loop to be seen within 64 tokens.

A loop that counts ("Paso 41: 12", "Paso 42: 12", ...) differs in its digits between
repeats, exactly as a table, a CSV or lines of code that differ only in their numbers do.
So it is looked for a second time with every run of digits made equal, and needs many more
copies there (``counting_repeats``, 16): the legitimate lists of that shape we know of have
up to 15 rows (a multiplication table, 12 ``nn.Linear`` lines, 15 ``printf`` lines), a
counting loop goes on for hundreds. It is found late (16 rows in), but found. Rows of a
table (``|``), of code (brackets) and of a numeric CSV (fewer than three letters) never
count this way: those are made of rows that differ only in their numbers.

What it does not stop: numbered lists, tables, code with similar lines and poems with a
refrain all change something between their repeats (the words of the item, a verse), so no
long suffix of them is periodic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSettings:
    """What counts as a loop (``LKN_LOOP_WINDOW``, ``LKN_LOOP_REPEATS``,
    ``LKN_LOOP_MIN_CHARS``, ``LKN_LOOP_COUNTING_REPEATS``; the check's period is fixed)."""

    window: int = 1024
    repeats: int = 3
    min_chars: int = 80
    check_every: int = 32
    #: Copies of a period that differ only in their digits (0: not looked for).
    counting_repeats: int = 16
    #: A non-streamed answer with a longer budget (``max_tokens``) is read as a stream, so
    #: that the guard can stop the engine; one with this budget or less is asked for whole
    #: and checked once it is in (``LKN_LOOP_STREAM_ABOVE``; 0: always read as a stream).
    stream_above: int = 256


@dataclass(frozen=True)
class Loop:
    """A loop found at the tail: its period and the repeated span, in characters."""

    period: int
    span: int


def smallest_periods(text: str) -> list[int]:
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


_DIGITS = re.compile(r"[0-9]+")


def _may_repeat(tail: str, min_chars: int) -> bool:
    """A necessary condition for a loop, checked by the string search in C: a suffix of
    ``L >= min_chars`` characters with period ``p`` and two copies or more (``L >= 2p``)
    has its last ``L - p >= min_chars / 2`` characters again ``p`` characters earlier, so the
    last ``min_chars // 2`` characters occur once more before the end. On text that does
    not repeat itself (most of every answer) this is the whole check."""
    key = tail[-(min_chars // 2):]
    return tail.find(key, 0, len(tail) - 1) != -1


#: Occurrences of the tail's last characters :func:`_searched` looks at before it leaves
#: the answer to the prefix function.
_SEARCHED = 32


def _has_period(tail: str, period: int, length: int) -> bool:
    """Whether the last ``length`` characters of ``tail`` have ``period``."""
    n = len(tail)
    return tail[n - length:n - period] == tail[n - length + period:]


def _extent(tail: str, period: int, known: int) -> int:
    """The longest suffix of ``tail`` with ``period``, one of ``known`` characters having
    it (a binary search of string comparisons in C)."""
    low, high = known, len(tail)
    while low < high:
        middle = (low + high + 1) // 2
        if _has_period(tail, period, middle):
            low = middle
        else:
            high = middle - 1
    return low


def _searched(tail: str, min_chars: int,
              copies_for: Callable[[int], int]) -> tuple[bool, Loop | None]:  # fmt: skip
    """What the prefix function finds, found with string searches: (True, the loop or
    None), or (False, None) when ``_SEARCHED`` tries did not settle it. For ``copies_for`` of 2 to 4 copies (or the same for every period).

    A loop's period ``p`` is a distance at which the last ``h = min_chars // 2`` characters
    occur again (see :func:`_may_repeat`); for each such distance in increasing order,
    ``ext(p)`` is the longest suffix with period ``p``. A suffix's smallest period is the
    first of those distances whose ``ext`` reaches it (2 to 4 copies: a smaller true period
    would divide it and be one of them), so the longest loop is the ``ext`` of the last
    distance that sets a new longest ``ext`` and has its copies. After such a distance
    ``d``, none up to ``ext(d) - d`` can set a longer one (one would make a smaller period
    of that suffix, or differ from it where ``d`` does)."""
    n, h = len(tail), min_chars // 2
    key = tail[n - h:]
    best, found, end = 0, None, n - 1
    for _ in range(_SEARCHED):
        start = tail.rfind(key, 0, end)
        period = n - h - start
        if start < 0 or 2 * period > n:
            return True, found
        end = start + h - 1
        if best >= period + h and not _has_period(tail, period, best + 1):
            continue
        best = _extent(tail, period, max(period + h, best + 1))
        if best >= min_chars and best >= copies_for(period) * period:
            found = Loop(period, best)
        if best >= n:
            return True, found
        end = min(end, n - (best - period) - 1)
    return False, None


def _periodic(tail: str, min_chars: int, copies_for: Callable[[int], int],
              searched: bool) -> Loop | None:  # fmt: skip
    if not _may_repeat(tail, min_chars):
        return None
    if searched:
        settled, loop = _searched(tail, min_chars, copies_for)
        if settled:
            return loop
    periods = smallest_periods(tail[::-1])
    for length in range(len(tail), min_chars - 1, -1):
        period = periods[length - 1]
        if length >= period * copies_for(period):
            return Loop(period, length)
    return None


def find_loop(tail: str, settings: LoopSettings) -> Loop | None:
    """The longest loop ending at the end of ``tail``, or None."""
    # A long period (half the minimum span or more) is a loop once it is said twice.
    searched = settings.min_chars >= 2
    exact = _periodic(tail, settings.min_chars,
                      lambda p: 2 if 2 * p >= settings.min_chars else settings.repeats,
                      searched and 2 <= settings.repeats <= 4)
    if exact is not None or not settings.counting_repeats or not _DIGITS.search(tail):
        return exact
    counted = _DIGITS.sub("0", tail)  # linear time; lengths are those of the digit-free text
    loop = _periodic(counted, settings.min_chars, lambda p: max(2, settings.counting_repeats),
                     searched)
    return None if loop is None or _structured(counted[-loop.period:]) else loop


def _structured(row: str) -> bool:
    """A repeated row of a table, of code or of a numeric CSV: rows that differ only in
    their numbers are what these are made of, so they never count as a counting loop."""
    return ("|" in row or ("(" in row and ")" in row)
            or sum(c.isalpha() for c in row) < 3)


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


def loop_end(guard: LoopGuard, text: str) -> int | None:
    """Where the guard, fed ``text`` as it would be streamed, ends it: the length of the
    text it keeps (up to the piece in which it saw the loop), or None for no loop. The pieces
    are ``check_every`` characters long, so each feed is one check, as live."""
    step = guard.settings.check_every
    for end in range(step, len(text) + step, step):
        if guard.feed(text[end - step:end]) is not None:
            return min(end, len(text))
    return None


__all__ = ["Loop", "LoopGuard", "LoopSettings", "find_loop", "loop_end", "smallest_periods"]
