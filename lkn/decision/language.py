"""Which language a prompt is written in (English, Spanish, or unknown), cheaply.

Counts common function words and Spanish-only marks in the first few thousand characters;
linear time, no model. Only used to compare a score with others of the same language.
"""

from __future__ import annotations

import re

_SCAN = 4000
_WORD = re.compile(r"[a-záéíóúñü]+")
_EN = frozenset(
    "the is are was of and to in what how which why who does do can you it this that with for "
    "on be an or my your from".split()
)
_ES = frozenset(
    "el la los las es son de del y que en qué cómo cuál cuáles por para un una se su con lo "
    "al mi tu eres está están".split()
)
_ES_MARKS = re.compile(r"[¿¡ñáéíóú]")


def language_of(text: str) -> str:
    """``"en"``, ``"es"`` or ``"other"`` (no evidence either way)."""
    head = text[:_SCAN].lower()
    english = spanish = 0
    for word in _WORD.findall(head):
        if word in _EN:
            english += 1
        elif word in _ES:
            spanish += 1
    spanish += len(_ES_MARKS.findall(head))
    if english == spanish:
        return "other"
    return "en" if english > spanish else "es"
