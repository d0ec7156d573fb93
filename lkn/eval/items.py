"""The bundled evaluation set (``data/items.jsonl``, written by :mod:`lkn.eval.build_set`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ITEMS_FILE = Path(__file__).with_name("data") / "items.jsonl"
#: Open chat prompts (explanations, lists, stories, how-tos, step-by-step maths), asked in
#: Open WebUI's shape and graded for degeneration (:mod:`lkn.eval.degeneration`).
OPEN_FILE = Path(__file__).with_name("data") / "open.jsonl"


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    lang: str
    prompt: str
    answer: dict[str, Any]
    quick: bool

    @property
    def open(self) -> bool:
        """An open chat prompt: sent with no ``max_tokens``, graded for degeneration."""
        return self.answer.get("type") == "open_chat"


def parse_slice(text: str) -> tuple[int, int]:
    """``a/b`` -> (a, b): the items whose index within their category is a modulo b."""
    first, sep, second = text.partition("/")
    try:
        a, b = int(first), int(second)
    except ValueError:
        raise ValueError(f"--slice {text!r}: expected a/b, e.g. 4/8") from None
    if not sep or b < 1 or not 0 <= a < b:
        raise ValueError(f"--slice {text!r}: expected 0 <= a < b")
    return a, b


def sliced(items: list[Item], a: int, b: int) -> list[Item]:
    seen: dict[str, int] = {}
    out: list[Item] = []
    for item in items:
        n = seen.get(item.category, 0)
        seen[item.category] = n + 1
        if n % b == a:
            out.append(item)
    return out


def load_items(path: Path = ITEMS_FILE, quick: bool = False) -> list[Item]:
    """The items of ``path`` (only the ``--quick`` subset when ``quick``)."""
    items: list[Item] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item = Item(
                id=str(record["id"]), category=str(record["category"]), lang=str(record["lang"]),
                prompt=str(record["prompt"]), answer=dict(record["answer"]),
                quick=bool(record.get("quick", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an evaluation item ({exc})") from None
        if not quick or item.quick:
            items.append(item)
    return items
