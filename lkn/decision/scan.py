"""What the rules read: the bounded text, and how their patterns are kept linear in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Linear time, by construction. Python's ``re`` backtracks, so every pattern here keeps to
# these rules (``tests/decision/test_rules_cost.py`` checks each signal on adversarial input):
# - patterns run on the text with a ``\n`` in front; a line start is a literal ``\n``
#   followed by ``[^\S\n]`` (whitespace *except* newline), never ``^\s``, which under MULTILINE
#   lets every line start rescan all the newlines after it;
# - every pattern starts with a literal or a character class, so the engine skips the
#   positions that cannot start a match in C instead of trying each alternative there;
# - a run that starts a pattern (``\d+``, ``\w+``) is anchored by a lookbehind so it is
#   entered once per run, not once per character of it;
# - a window between words is bounded (``{0,4}``) and only opened at a literal word;
# - what needs counting or ordering (numbers, "first ... then") is one ``finditer`` pass.
# Word patterns run on the lower-cased text, without IGNORECASE (which disables both skips).


def words(*alternatives: str) -> re.Pattern[str]:
    r"""Alternatives that each start with a literal letter at the start of a word.

    Grouped by that letter, each group as ``x(?<!\w.)(?:rest|...)``: the first letter makes
    the pattern's start a literal set, and the lookbehind is the word boundary before it.
    """
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        first = alternative[0]
        if not first.isalpha() or first != first.lower():
            raise ValueError(f"word pattern must start with a lower-case letter: {alternative}")
        groups.setdefault(first, []).append(alternative[1:])
    return re.compile("|".join(
        f"{first}(?<!\\w.)(?:{'|'.join(rests)})" for first, rests in groups.items()))


@dataclass(frozen=True)
class Scan:
    """The text as written and lower-cased, each with a ``\n`` in front."""

    raw: str
    low: str

    @classmethod
    def of(cls, text: str) -> Scan:
        raw = "\n" + text
        return cls(raw, raw.lower())


def any_match(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(pattern.search(text) is not None for pattern in patterns)
