"""Scores ranked within their language and rules category; the language guess."""

from __future__ import annotations

import pytest

from lkn.decision.language import language_of
from lkn.decision.normalise import ScoreNormaliser, category_of

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(("text", "language"), [
    ("What is the capital of France?", "en"),
    ("How does a compiler work, and why is it fast?", "en"),
    ("¿Cuál es la capital de Francia?", "es"),
    ("Explica cómo funciona un compilador y por qué es rápido", "es"),
    ("", "other"),
    ("12345 + 678", "other"),
])
def test_language_of(text: str, language: str) -> None:
    assert language_of(text) == language


def test_language_of_reads_a_bounded_head() -> None:
    assert language_of("the " * 2000 + "el " * 100_000) == "en"


@pytest.mark.parametrize(("signals", "category"), [
    ((), "plain"), (("math", "math_words"), "math"), (("long_prompt", "code"), "code"),
    (("multi_step",), "multi_step"), (("long_prompt",), "long"),
    (("word_problem",), "math"), (("code_request",), "code"), (("reasoning_cue",), "multi_step"),
])
def test_category_of(signals: tuple[str, ...], category: str) -> None:
    assert category_of(signals) == category


def test_cold_groups_give_the_raw_score_back() -> None:
    n = ScoreNormaliser(window=10, min_samples=3)
    assert n.normalise(0.7, "en", "plain").group == "raw"
    assert n.normalise(0.7, "en", "plain").score == 0.7


def test_rank_within_the_group_is_the_mid_rank() -> None:
    n = ScoreNormaliser(window=10, min_samples=4)
    for score in (0.1, 0.2, 0.3, 0.4):
        n.normalise(score, "es", "math")
    ranked = n.normalise(0.3, "es", "math")
    assert ranked.group == "es/math" and ranked.score == pytest.approx((2 + 0.5) / 4)
    assert n.normalise(0.99, "es", "math").score == 1.0


def test_a_cold_category_borrows_its_language() -> None:
    n = ScoreNormaliser(window=10, min_samples=3)
    for score in (0.2, 0.4, 0.6):
        n.normalise(score, "es", "plain")
    ranked = n.normalise(0.5, "es", "code")
    assert ranked.group == "es/*" and ranked.score == pytest.approx(2 / 3)
    assert n.normalise(0.5, "en", "code").group == "raw"


def test_the_window_forgets_old_scores() -> None:
    n = ScoreNormaliser(window=3, min_samples=3)
    for score in (0.9, 0.9, 0.9, 0.1, 0.1, 0.1):
        n.normalise(score, "en", "plain")
    assert n.normalise(0.5, "en", "plain").score == 1.0
    assert n.counts() == {"en/*": 3, "en/plain": 3}
