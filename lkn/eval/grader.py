"""Grades one answer against an item's answer spec, tolerant of wording and language.

The grader looks at the answer's *final* claim: the text after the last explicit marker
("the answer is", "respuesta:", "=", ``**bold**``, ``\\boxed{}`` ...) when there is one, else
the whole answer. It never looks for the intervention's own words, so a step-by-step answer
and a one-word answer are graded by the same rule. Answer specs (``answer`` in an item):

- ``{"type": "number", "value": v, "tolerance": t, "probability": bool}``:
  the last number stated right after a marker (else the last number at all) equals ``v`` (within ``t``, default 1e-6 relative).
  Numbers may be written ``1,000`` / ``1.000`` / ``2,5`` / ``1/6`` / ``25%`` / ``twelve`` /
  ``doce``; for probabilities ``1 in 6`` counts too; ``4:30`` is 4.5 (hours).
- ``{"type": "text", "aliases": [...]}``: one alias occurs as whole words in the final claim
  (case, accents and punctuation ignored).
- ``{"type": "choice", "aliases": [...], "wrong": [...]}``: among the options (aliases and
  wrong ones) the first one named in the final claim is a right one.
- ``{"type": "open", "topic": [...], "min_words": n}``: answered (at least ``n`` words), not
  cut off by the token limit, and on topic (a topic stem occurs).

Every function here is linear in the answer's length (answers are bounded by max_tokens).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Reading numbers. The runtime reads final answers the same way (the consistency vote,
# lkn.decision.consistency, uses fold, numbers and marked_numbers): this section uses
# nothing but the standard library.

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20,
    "cero": 0, "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13,
    "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
    "diecinueve": 19, "veinte": 20,
}

#: Markers after which an answer states its conclusion (matched on folded text).
_MARKERS = re.compile(
    r"\b(?:the (?:final |correct )?answer is|answer\s*:|final answer\s*:?|so the answer is"
    r"|the result is|result\s*:|therefore,?|thus,?|hence,?|in total,?|total\s*:"
    r"|la respuesta (?:final |correcta )?es|respuesta\s*:|el resultado es|resultado\s*:"
    r"|por lo tanto,?|por tanto,?|entonces,?|en total,?)"
    r"|=|\\boxed\{"
)
_BOLD = re.compile(r"\*\*([^*\n]{1,80})\*\*")

# One number token: fraction, thousands-grouped, decimal (dot or comma), or plain integer;
# optional sign and percent sign; an optional ``in N`` for "1 in 6".
_NUM = re.compile(
    r"(?<![\w.,])(-?)(\d{1,3}(?:[.,]\d{3})+(?![\d])|\d+(?:[.,]\d+)?)(?:\s*/\s*(\d+))?"
    r"(\s*%|\s+(?:in|de cada|entre)\s+(\d+))?"
)
#: How far after a marker its number may start (room for "approximately", "$", ":").
_MARK_REACH = 16
_FIRST_DIGIT = re.compile(r"-?\d")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_WORD = re.compile(r"[a-z]+")


def fold(text: str) -> str:
    """Lower case without accents; ``ñ`` kept apart from ``n`` is not worth the cost here."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _parse_number(sign: str, digits: str, denominator: str | None) -> float | None:
    if re.fullmatch(r"[1-9]\d{0,2}(?:[.,]\d{3})+", digits):
        # 1,000 / 1.000: thousands in either language (0,250 and 0.25 are decimals).
        value = float(digits.replace(",", "").replace(".", ""))
    else:
        value = float(digits.replace(",", "."))
    if denominator is not None:
        bottom = float(denominator)
        if bottom == 0:
            return None
        value /= bottom
    return -value if sign else value


@dataclass(frozen=True)
class NumberToken:
    value: float
    percent: bool = False


def numbers(text: str, odds: bool = False) -> list[NumberToken]:
    """Every number in ``text``, in order of appearance.

    Digits first (``4:30`` reads as 4.5 hours, ``25%`` as 0.25, with ``odds`` ``1 in 6`` as
    1/6); only when there is no digit at all, number words (``twelve``, ``doce``), since
    prose is full of words like "one".
    """
    folded = fold(text)
    clocks = list(_CLOCK.finditer(folded))
    found = [(m.start(), NumberToken(int(m.group(1)) + int(m.group(2)) / 60.0)) for m in clocks]
    found += _digit_numbers(folded, [m.span() for m in clocks], odds)
    if not found:
        found = _word_numbers(folded)
    found.sort(key=lambda pair: pair[0])
    return [token for _, token in found]


def _digit_numbers(folded: str, taken: list[tuple[int, int]],
                   odds: bool) -> list[tuple[int, NumberToken]]:  # fmt: skip
    """The numbers written in digits outside the ``taken`` spans, with their positions."""
    found: list[tuple[int, NumberToken]] = []
    for match in _NUM.finditer(folded):
        if any(start <= match.start() < end for start, end in taken):
            continue
        value = _parse_number(match.group(1), match.group(2), match.group(3))
        if value is None:
            continue
        percent = "%" in (match.group(4) or "")
        if match.group(5) and odds:
            bottom = float(match.group(5))
            if bottom == 0:
                continue
            value /= bottom
        found.append((match.start(), NumberToken(value / 100.0 if percent else value, percent)))
    return found


def _word_numbers(folded: str) -> list[tuple[int, NumberToken]]:
    """The number words (``twelve``, ``doce``) in ``folded``, with their positions."""
    found: list[tuple[int, NumberToken]] = []
    for match in _WORD.finditer(folded):
        value = _NUMBER_WORDS.get(match.group(0))
        if value is not None:
            found.append((match.start(), NumberToken(float(value))))
    return found


def marked_numbers(answer: str, odds: bool = False) -> list[NumberToken]:
    """Numbers stated right after a marker ("= 7", "the answer is 7", "**7**"), in order.

    Only a number within a few characters of its marker counts: "the result is a fraction
    with a denominator of 13" states no result.
    """
    folded = fold(answer)
    found: list[tuple[int, NumberToken]] = []
    for match in _MARKERS.finditer(folded):
        window = folded[match.end(): match.end() + _MARK_REACH + 24]
        tokens = numbers(window, odds)
        first = _FIRST_DIGIT.search(window)
        if tokens and first is not None and first.start() <= _MARK_REACH:
            found.append((match.start(), tokens[0]))
    for bold in _BOLD.finditer(folded):
        tokens = numbers(bold.group(1), odds)
        if tokens:
            found.append((bold.start(), tokens[-1]))
    found.sort(key=lambda pair: pair[0])
    return [token for _, token in found]


# Grading.

def _words(text: str) -> str:
    """Folded text with every run of non-alphanumerics turned into one space, padded."""
    return " " + " ".join(re.findall(r"[a-z0-9₂]+", fold(text))) + " "


def final_claim(answer: str) -> str:
    """The part of ``answer`` that states its conclusion (see the module docstring)."""
    folded = fold(answer)
    last = None
    for last in _MARKERS.finditer(folded):
        pass
    bolds = list(_BOLD.finditer(folded))
    if bolds and (last is None or bolds[-1].start() > last.start()):
        return bolds[-1].group(1)
    if last is not None:
        tail = folded[last.end():]
        # The claim is what follows the marker up to the end of its sentence or line.
        if tail.strip():
            return tail
    return folded


def _close(got: float, want: float, tolerance: float | None) -> bool:
    if tolerance is not None:
        return abs(got - want) <= tolerance
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)


def _grade_number(answer: str, spec: Mapping[str, Any]) -> bool:
    want = float(spec["value"])
    tolerance = spec.get("tolerance")
    tol = float(tolerance) if tolerance is not None else None
    odds = bool(spec.get("probability"))
    claim = marked_numbers(answer, odds) or numbers(answer, odds)
    if not claim:
        return False
    token = claim[-1]
    if _close(token.value, want, tol):
        return True
    # "50%" was read as 0.5: right for a probability of 0.5, and for a wanted 50 too.
    return token.percent and not odds and _close(token.value * 100, want, tol)


def _contains(haystack: str, alias: str) -> int:
    """Position of ``alias`` as whole words in the padded word string, or -1."""
    needle = _words(alias)
    if needle.strip() == "":
        return -1
    return haystack.find(needle)


def _grade_text(answer: str, aliases: Sequence[str]) -> bool:
    claim = _words(final_claim(answer))
    whole = _words(answer)
    return any(_contains(claim, a) >= 0 or _contains(whole, a) >= 0 for a in aliases)


def _grade_choice(answer: str, right: Sequence[str], wrong: Sequence[str]) -> bool:
    for region in (_words(final_claim(answer)), _words(answer)):
        first: tuple[int, bool] | None = None
        for option, is_right in [*((a, True) for a in right), *((w, False) for w in wrong)]:
            at = _contains(region, option)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, is_right)
        if first is not None:
            return first[1]
    return False


def _grade_open(answer: str, spec: Mapping[str, Any], finish_reason: str | None) -> bool:
    if finish_reason == "length":
        return False
    if len(answer.split()) < int(spec.get("min_words", 5)):
        return False
    folded = fold(answer)
    return any(fold(stem) in folded for stem in spec.get("topic", ()))


def grade(answer: str, spec: Mapping[str, Any], finish_reason: str | None = None) -> bool:
    """Whether ``answer`` is right for ``spec``; raises ``ValueError`` for an unknown type."""
    kind = spec.get("type")
    if kind == "open":
        return _grade_open(answer, spec, finish_reason)
    if not answer.strip():
        return False
    if kind == "number":
        return _grade_number(answer, spec)
    if kind == "text":
        return _grade_text(answer, spec["aliases"])
    if kind == "choice":
        return _grade_choice(answer, spec["aliases"], spec.get("wrong", ()))
    raise ValueError(f"unknown answer type {kind!r}")
