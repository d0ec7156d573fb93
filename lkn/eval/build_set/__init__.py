"""Writes the bundled evaluation set, ``lkn/eval/data/items.jsonl`` (``python -m lkn.eval.build_set``).

The set was written for this project: templated items (arithmetic, word problems, unit
conversion, counting and probability) come from a seeded generator so their answers are
computed, not typed; facts, code reading, logic and chat prompts are written out, one module
per item family. Every item has an id, a category, a language (``en``/``es``), a prompt and
an answer spec (see :mod:`lkn.eval.grader`, built by :mod:`.answers`). Items with ``quick``
true form the ``--quick`` subset.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from lkn.eval.build_set.answers import Prompt, choice, number, open_, text
from lkn.eval.build_set.arithmetic import arithmetic
from lkn.eval.build_set.chat import CHAT, chat
from lkn.eval.build_set.code_reading import CODE, code_reading
from lkn.eval.build_set.conversions import conversions
from lkn.eval.build_set.counting import counting
from lkn.eval.build_set.facts import CAPITALS, FACTS, capitals
from lkn.eval.build_set.logic import LOGIC
from lkn.eval.build_set.word_problems import word_problems

__all__ = [
    "CAPITALS", "CHAT", "CODE", "FACTS", "LOGIC", "OUT", "SEED", "Item", "Prompt", "arithmetic",
    "build", "capitals", "chat", "choice", "code_reading", "conversions", "counting", "main",
    "number", "open_", "serialised", "text", "word_problems",
]

Item = dict[str, Any]
OUT = Path(__file__).parent.parent / "data" / "items.jsonl"
#: The generator's seed: the set is the same on every run.
SEED = 20261201


def _families(rng: random.Random) -> list[tuple[str, list[Prompt]]]:
    """Each category with its prompts, in the set's order (the seeded ones draw in turn)."""
    return [
        ("arithmetic", arithmetic(rng)),
        ("word_problems", word_problems(rng)),
        ("unit_conversion", conversions(rng)),
        ("counting_probability", counting(rng)),
        ("facts_capitals", [*capitals(), *FACTS]),
        ("code_reading", code_reading()),
        ("logic", LOGIC),
        ("chat", chat()),
    ]


def build() -> list[Item]:
    """Every item of the set, numbered within its category.

    The quick subset: every eighth item of each category (both languages alternate).
    """
    items: list[Item] = []
    for category, prompts in _families(random.Random(SEED)):
        for index, (lang, prompt, answer) in enumerate(prompts):
            items.append({"id": f"{category}-{index + 1:03d}", "category": category, "lang": lang,
                          "prompt": prompt, "answer": answer, "quick": index % 8 == 0})
    return items


def serialised(items: list[Item]) -> str:
    """The JSONL text of ``items``, as ``data/items.jsonl`` holds it."""
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def main() -> None:
    items = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(serialised(items), encoding="utf-8")
    print(f"wrote {len(items)} items to {OUT}")
