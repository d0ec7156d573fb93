"""The grader reads the final claim of an answer, whatever the wording or language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkn.eval.grader import final_claim, grade, numbers
from lkn.eval.items import load_items

pytestmark = pytest.mark.fast

NUM = {"type": "number", "value": 7}


@pytest.mark.parametrize("answer", [
    "7",
    "The answer is 7.",
    "She has 7 apples left.",
    "12 - 5 = 7",
    "First, 12 apples. She gives away 5, so 12 - 5 = 7. The answer is **7**.",
    "La respuesta es 7.",
    "Le quedan siete manzanas.",
    "Seven.",
    "Therefore, 7 apples remain.",
    "7.0",
    "12 - 5 = 7.\n\nIn this case the result is a fraction with a denominator of 13.",
])
def test_number_right(answer: str) -> None:
    assert grade(answer, NUM)


@pytest.mark.parametrize("answer", [
    "",
    "I don't know.",
    "The answer is 8.",
    "12 - 5 = 6",
    "She had 12 and gives away 5, so she has 17.",
    "Seven is a lucky number, but the answer is 70.",
    "12 - 5 = 6. The result is a fraction with a denominator of 7.",
])
def test_number_wrong(answer: str) -> None:
    assert not grade(answer, NUM)


def test_number_formats() -> None:
    assert grade("It is 1,000 metres.", {"type": "number", "value": 1000})
    assert grade("Son 1.000 metros.", {"type": "number", "value": 1000})
    assert grade("Llega a las 4,5 horas.", {"type": "number", "value": 4.5})
    assert grade("It arrives at 4:30.", {"type": "number", "value": 4.5})
    assert grade("x = -3", {"type": "number", "value": -3})
    assert not grade("12-3", {"type": "number", "value": -3})


def test_probability_forms() -> None:
    spec = {"type": "number", "value": 1 / 6, "tolerance": 0.005, "probability": True}
    for answer in ("1/6", "The probability is 1/6.", "about 0.167", "16.7%", "1 in 6",
                   "La probabilidad es de 1 entre 6.", "0,1667"):
        assert grade(answer, spec), answer
    for answer in ("6", "1/2", "The probability is 50%."):
        assert not grade(answer, spec), answer


def test_percent_of_a_plain_number() -> None:
    assert grade("50%", {"type": "number", "value": 50})
    assert not grade("1 in 6", {"type": "number", "value": 6})  # odds only for probabilities


def test_text_aliases_accents_and_case() -> None:
    spec = {"type": "text", "aliases": ["Bogotá", "Bogota"]}
    assert grade("La capital de Colombia es bogota.", spec)
    assert grade("BOGOTÁ", spec)
    assert not grade("Medellín", spec)
    # Whole words only: "Roma" is not in "Romania".
    assert not grade("Romania", {"type": "text", "aliases": ["Roma"]})
    assert grade("Mexico City is the capital.", {"type": "text", "aliases": ["Mexico City"]})


def test_choice_takes_the_first_option_named() -> None:
    spec = {"type": "choice", "aliases": ["yes"], "wrong": ["no"]}
    assert grade("Yes, Tom is an animal.", spec)
    assert not grade("No. There is no reason to think so.", spec)
    assert grade("Let me think: cats are animals, there is no doubt. The answer is yes.", spec)
    es = {"type": "choice", "aliases": ["sí", "si"], "wrong": ["no"]}
    assert grade("Sí, es un animal.", es)
    assert not grade("No lo es.", es)
    assert not grade("I cannot tell.", spec)


def test_open_answers() -> None:
    spec = {"type": "open", "topic": ["sleep", "bed"], "min_words": 5}
    assert grade("Go to bed at the same time every night.", spec, "stop")
    assert not grade("Go to bed at the same time every night and", spec, "length")
    assert not grade("Sure!", spec, "stop")
    assert not grade("Here is a recipe for a chocolate cake with eggs.", spec, "stop")


def test_final_claim_uses_the_last_marker() -> None:
    assert final_claim("2 + 2 = 4, then 4 + 3 = 7").strip() == "7"
    assert "8" in final_claim("The answer is 8.")
    assert final_claim("**Paris** is the capital") == "paris"


def test_numbers_prefers_digits_over_words() -> None:
    assert [t.value for t in numbers("one of the 3 answers")] == [3.0]
    assert [t.value for t in numbers("doce")] == [12.0]


def test_unknown_answer_type_is_an_error() -> None:
    with pytest.raises(ValueError):
        grade("x", {"type": "regex"})


_DATA = Path(__file__).resolve().parents[2] / "lkn" / "eval" / "data"


@pytest.mark.parametrize("name", ["items.jsonl", "fresh.jsonl", "fresh2.jsonl"])
def test_each_short_set_grades_its_own_answers(name: str) -> None:
    """Every item's expected answer, written plainly, is graded right (aliases consistent),
    in the bundled set and in each held-out set written after it."""
    items = load_items(_DATA / name)
    assert len(items) >= (400 if name == "items.jsonl" else 120)
    assert {i.lang for i in items} == {"en", "es"}
    assert {"arithmetic", "word_problems", "unit_conversion", "counting_probability",
            "facts_capitals", "code_reading", "logic", "chat"} <= {i.category for i in items}
    assert len({i.id for i in items}) == len(items)
    for item in items:
        spec = item.answer
        if spec["type"] == "number":
            value = spec["value"]
            answer = f"The answer is {value:g}." if isinstance(value, float) else f"{value}"
        elif spec["type"] == "open":
            answer = f"Here are some thoughts about {spec['topic'][0]} for you today."
        else:
            answer = f"{spec['aliases'][0]}."
        assert grade(answer, spec, "stop"), (item.id, answer)


def test_items_file_is_valid_jsonl() -> None:
    path = Path(__file__).resolve().parents[2] / "lkn" / "eval" / "data" / "items.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert set(record) >= {"id", "category", "lang", "prompt", "answer", "quick"}
