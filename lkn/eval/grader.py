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
from collections.abc import Mapping, Sequence
from typing import Any

from lkn.decision.answers import BOLD as _BOLD
from lkn.decision.answers import MARKERS as _MARKERS
from lkn.decision.answers import fold, marked_numbers, numbers

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
