"""The loop guard, at its default settings, on its labelled set (tests/data): real answers of
SmolLM2-135M-Instruct on the open chat prompts at temperature 0 and at SGLang's default
sampling, labelled by ``scripts/loop_set.py``, and hand-made legitimate repetitions."""

from __future__ import annotations

import sys

import pytest

from lkn.loopguard import LoopSettings
from tests.livestack import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from loop_set import ANSWERS, LEGIT, evaluate, load, pieces_of, replay  # noqa: E402

pytestmark = pytest.mark.fast


def test_the_labelled_set_is_what_it_says() -> None:
    answers, legit = load(ANSWERS), load(LEGIT)
    loops = [a for a in answers if a["label"] == "loop"]
    assert len(loops) >= 20 and len(answers) - len(loops) >= 100
    assert {a["lang"] for a in loops} == {"en", "es"} and {a["lang"] for a in legit} == {"en", "es"}
    assert {a["sampling"][:2] for a in answers if a["label"] == "normal"} == {"t0", "de"}
    kinds = {r["kind"] for r in legit}
    assert {"numbered list", "table", "code", "poem", "csv"} <= kinds


def test_the_guard_stops_the_loops_and_nothing_legitimate() -> None:
    result = evaluate(LoopSettings(), load(ANSWERS), load(LEGIT))
    assert result["legit_false_positives"] == []
    assert len(result["false_positives"]) <= 0.01 * result["normal"]
    assert result["detected"] >= 0.95 * result["loops"]
    # Half the loops are seen within 40 tokens of their first repeated token.
    assert result["tokens_to_detection"]["median"] <= 40


def test_hand_made_pieces_are_token_sized() -> None:
    text = load(LEGIT)[0]["text"]
    pieces = pieces_of(text)
    assert "".join(pieces) == text and max(map(len, pieces)) <= 12
    assert replay(pieces, LoopSettings()) is None
