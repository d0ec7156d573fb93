"""Reading an answer's numbers, as the evaluation's grader and the consistency vote both do.

Text is folded (lower case, no accents) first. :func:`numbers` reads every number stated
(``1,000`` / ``1.000`` / ``2,5`` / ``1/6`` / ``25%`` / ``4:30`` as 4.5 hours; with ``odds``,
``1 in 6``; number words such as ``twelve`` or ``doce`` only where no digit is written);
:func:`marked_numbers` only those stated right after a marker of a conclusion (:data:`MARKERS`,
``**bold**``). The standard library only; every function is linear in the text's length
(answers are bounded by max_tokens). Used by :mod:`.consistency` and :mod:`lkn.eval.grader`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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
MARKERS = re.compile(
    r"\b(?:the (?:final |correct )?answer is|answer\s*:|final answer\s*:?|so the answer is"
    r"|the result is|result\s*:|therefore,?|thus,?|hence,?|in total,?|total\s*:"
    r"|la respuesta (?:final |correcta )?es|respuesta\s*:|el resultado es|resultado\s*:"
    r"|por lo tanto,?|por tanto,?|entonces,?|en total,?)"
    r"|=|\\boxed\{"
)
#: A bold span, which states a conclusion too.
BOLD = re.compile(r"\*\*([^*\n]{1,80})\*\*")

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
        try:
            value = float(digits.replace(",", "."))
        except ValueError:  # "0.251.000": neither a decimal nor grouped thousands
            return None
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
    for match in MARKERS.finditer(folded):
        window = folded[match.end(): match.end() + _MARK_REACH + 24]
        tokens = numbers(window, odds)
        first = _FIRST_DIGIT.search(window)
        if tokens and first is not None and first.start() <= _MARK_REACH:
            found.append((match.start(), tokens[0]))
    for bold in BOLD.finditer(folded):
        tokens = numbers(bold.group(1), odds)
        if tokens:
            found.append((bold.start(), tokens[-1]))
    found.sort(key=lambda pair: pair[0])
    return [token for _, token in found]
