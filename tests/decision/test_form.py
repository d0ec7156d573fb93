"""The form signal ``open_ended``: a composition asked for, told apart from a question.

Two labelled sets, each written by someone who had not seen the signal's patterns:
``form_check.jsonl`` (80 requests) before the patterns were widened once after reading its
misses (recall 0.625 -> 0.975), and ``form_check2.jsonl`` (100 requests, with factual
questions that name stories, poems, lists and steps as traps) after that, measured once
and not used to change the patterns. The floors below are those measurements, less a
margin for nothing: a change that loses ground on either set fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkn.care.policy import parse_policy
from lkn.decision import rules
from lkn.values import Mode, risk_signals

pytestmark = pytest.mark.fast

DATA = Path(__file__).resolve().parents[1] / "data"


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in
            (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _open(text: str) -> bool:
    return "open_ended" in rules.evaluate(text, 150).signals


def _scores(rows: list[dict[str, str]]) -> tuple[float, float]:
    tp = sum(1 for r in rows if r["form"] == "open" and _open(r["text"]))
    fp = sum(1 for r in rows if r["form"] == "short" and _open(r["text"]))
    fn = sum(1 for r in rows if r["form"] == "open" and not _open(r["text"]))
    return tp / (tp + fp), tp / (tp + fn)


@pytest.mark.parametrize(("name", "precision", "recall"), [
    ("form_check.jsonl", 1.0, 0.975),   # used once to widen the patterns
    ("form_check2.jsonl", 0.85, 0.84),  # measured once, blind: P 0.857, R 0.840
])
def test_compositions_are_told_from_questions(name: str, precision: float,
                                              recall: float) -> None:  # fmt: skip
    rows = _rows(name)
    for lang in ("en", "es"):
        assert sum(r["lang"] == lang for r in rows) == len(rows) // 2
    got_precision, got_recall = _scores(rows)
    assert got_precision >= precision and got_recall >= recall, (got_precision, got_recall)


@pytest.mark.parametrize("text", [
    "Write a short story about a lighthouse keeper.",
    "Escríbeme un poema sobre la lluvia.",
    "Give me some tips for a job interview.",
    "¿Cómo preparo una tortilla de patatas?",
    "Explain how tides work.",
    "A limerick about a cat, please",
    "Hi! How are you?",          # small talk has no single right answer either
    "Hola, ¿qué tal?",
])
def test_a_composition_is_open_ended_and_no_risk(text: str) -> None:
    verdict = rules.evaluate(text, 150)
    assert "open_ended" in verdict.signals
    assert risk_signals(verdict.signals) == () and verdict.mode is Mode.FLUIDO


@pytest.mark.parametrize("text", [
    "Explain step by step: a shirt costs $40 with 25% off, what is the price?",
    "Explica paso a paso cuánto es 15 * 4 + 3.",
    "Write a story problem answer: 12 apples shared by 4 children, how many each?",
])
def test_a_checkable_question_is_not_open_ended_however_it_asks(text: str) -> None:
    verdict = rules.evaluate(text, 150)
    assert "open_ended" not in verdict.signals and verdict.mode is Mode.ANALITICO


@pytest.mark.parametrize("text", ["Hello, what is the capital of France?",
                                  "Buenos días, ¿cuál es la capital de Perú?"])
def test_a_greeting_before_a_question_is_a_question(text: str) -> None:
    assert "open_ended" not in rules.evaluate(text, 150).signals


def test_any_and_no_signal_look_past_the_form() -> None:
    policy = parse_policy({"format": "lkn-policy/1", "rules": [
        {"signals": ["*"], "intervention": "sampling"},
        {"signals": ["none"], "intervention": "sampling:dry=0.8"},
    ]}, "p.json")
    assert policy.choose(("open_ended",), None)[0].name == "sampling:dry=0.8"
    assert policy.choose(("math", "open_ended"), None)[0].name == "sampling"
    apart = parse_policy({"format": "lkn-policy/1", "rules": [
        {"signals": ["open_ended"], "intervention": "none"},
        {"signals": ["all"], "intervention": "sampling:dry=0.8"},
    ]}, "p.json")
    assert apart.choose(("open_ended",), None)[0].name == "none"
    assert apart.choose((), None)[0].name == "sampling:dry=0.8"
    # Some requests get nothing, so the rule for all is care, not the default treatment.
    assert apart.default.name == "none"
