"""The rules on a labelled set written before they were run on it (tests/data/rules_check.jsonl:
48 prompts, EN and ES, half of which need care): F1 per language, and no plain prompt
flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkn.decision import rules
from lkn.values import Mode

pytestmark = pytest.mark.fast

ROWS = [json.loads(line) for line in
        (Path(__file__).resolve().parents[1] / "data" / "rules_check.jsonl").read_text(
            encoding="utf-8").splitlines()]


def flagged(prompt: str) -> bool:
    return rules.evaluate(prompt, 150).mode is Mode.ANALITICO


def f1(rows: list[dict[str, object]]) -> float:
    tp = sum(1 for r in rows if r["risky"] and flagged(str(r["prompt"])))
    fp = sum(1 for r in rows if not r["risky"] and flagged(str(r["prompt"])))
    fn = sum(1 for r in rows if r["risky"] and not flagged(str(r["prompt"])))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_the_set_is_balanced_in_both_languages() -> None:
    for lang in ("en", "es"):
        rows = [r for r in ROWS if r["lang"] == lang]
        assert len(rows) == 24 and sum(bool(r["risky"]) for r in rows) == 12


@pytest.mark.parametrize("lang", ["en", "es"])
def test_f1_per_language(lang: str) -> None:
    assert f1([r for r in ROWS if r["lang"] == lang]) >= 0.9


def test_no_plain_prompt_is_flagged() -> None:
    assert [r["id"] for r in ROWS if not r["risky"] and flagged(str(r["prompt"]))] == []
