"""Entropy maths: the seed's normalised Shannon entropy of the top-K logprobs."""

from __future__ import annotations

import math

import pytest

from lkn.decision.entropy import normalized_entropy, read_positions, tail_mass
from lkn.values import TopToken

pytestmark = pytest.mark.fast


def logs(*probs: float) -> list[float | None]:
    return [math.log(p) if p > 0 else -math.inf for p in probs]


@pytest.mark.parametrize("k", [2, 5, 10, 20])
def test_uniform_top_k_is_one(k: int) -> None:
    assert normalized_entropy(logs(*([1.0 / k] * k))) == pytest.approx(1.0)


def test_uniform_after_renormalisation_is_one() -> None:
    # The top 4 cover only 40 % of the mass, equally: renormalised, it is uniform.
    assert normalized_entropy(logs(0.1, 0.1, 0.1, 0.1)) == pytest.approx(1.0)


def test_one_hot_is_zero() -> None:
    assert normalized_entropy([0.0, -math.inf, -math.inf, -math.inf]) == 0.0
    assert normalized_entropy(logs(1.0, 0.0, 0.0)) == 0.0


def test_hand_computed_two_way_split() -> None:
    # p = (0.75, 0.25): H = -(0.75 log2 0.75 + 0.25 log2 0.25) = 0.811278..., K = 2.
    assert normalized_entropy(logs(0.75, 0.25)) == pytest.approx(0.8112781245, abs=1e-9)


def test_hand_computed_four_way_with_renormalisation() -> None:
    # (0.4, 0.2, 0.1, 0.1) sums to 0.8 -> (0.5, 0.25, 0.125, 0.125): H = 1.75 bits, / log2 4.
    assert normalized_entropy(logs(0.4, 0.2, 0.1, 0.1)) == pytest.approx(1.75 / 2.0)


def test_k_equal_one_is_zero() -> None:
    assert normalized_entropy([-2.3]) == 0.0


def test_missing_logprobs_count_as_zero_probability_but_count_in_k() -> None:
    # Two equal alternatives and two missing of K = 4: H = 1 bit, / log2 4 = 0.5.
    assert normalized_entropy([math.log(0.3), None, math.log(0.3), -math.inf]) == pytest.approx(0.5)
    assert normalized_entropy([math.log(0.3), math.nan, math.log(0.3), None]) == pytest.approx(0.5)


def test_all_missing_or_empty_is_unusable() -> None:
    assert normalized_entropy([None, -math.inf, None]) is None
    assert normalized_entropy([]) is None


def test_float_noise_above_zero_is_clamped() -> None:
    assert normalized_entropy([1e-7, -math.inf]) == 0.0
    assert tail_mass([1e-7]) == 0.0


def test_tail_mass_is_what_the_top_k_leave_out() -> None:
    assert tail_mass(logs(0.5, 0.2, 0.1)) == pytest.approx(0.2)
    assert tail_mass(logs(0.5, 0.5)) == pytest.approx(0.0, abs=1e-12)
    assert tail_mass([None, -math.inf]) == 1.0


def test_reading_scores_the_most_uncertain_position() -> None:
    peaked = (TopToken("a", math.log(0.97)), TopToken("b", math.log(0.03)))
    flat = (TopToken("c", math.log(0.5)), TopToken("d", math.log(0.5)))
    reading = read_positions([peaked, flat])
    assert reading is not None
    assert reading.score == pytest.approx(1.0)
    assert reading.entropies[0] == pytest.approx(normalized_entropy(logs(0.97, 0.03)))
    assert reading.tail_mass == pytest.approx((0.0, 0.0), abs=1e-12)


def test_reading_skips_unusable_positions_and_marks_them_nan() -> None:
    empty = (TopToken("x", -math.inf),)
    peaked = (TopToken("a", math.log(0.9)), TopToken("b", math.log(0.05)))
    reading = read_positions([empty, peaked])
    assert reading is not None
    assert math.isnan(reading.entropies[0])
    assert reading.score == reading.entropies[1]
    assert reading.tail_mass[0] == 1.0 and reading.tail_mass[1] == pytest.approx(0.05)


def test_reading_without_any_usable_position_is_none() -> None:
    assert read_positions([]) is None
    assert read_positions([(), (TopToken("x", -math.inf),)]) is None


# ---- features over the answer tokens -------------------------------------------------


def position(*pairs: tuple[str, float]) -> tuple[TopToken, ...]:
    return tuple(TopToken(token, math.log(p)) for token, p in pairs)


SURE = position(("Paris", 0.9), ("Lyon", 0.05), ("Nice", 0.05))
TORN = position((" The", 0.5), (" Paris", 0.5))
SPLIT = position(("Madrid", 0.45), ("Sevilla", 0.35), ("Bilbao", 0.1))


@pytest.mark.parametrize("token", [" ", "\n\n", "**", "##", " -", " The", "El", " la",
                                   "¿", "> ", "`"])
def test_tokens_that_carry_no_answer(token: str) -> None:
    from lkn.decision.entropy import carries_answer

    assert not carries_answer(token)


@pytest.mark.parametrize("token", ["Paris", " 42", "Yes", " Madrid", "x", "Theory"])
def test_tokens_that_carry_an_answer(token: str) -> None:
    from lkn.decision.entropy import carries_answer

    assert carries_answer(token)


def test_leading_article_and_markdown_positions_are_skipped() -> None:
    markdown = position(("**", 0.4), ("##", 0.3), ("-", 0.3))
    reading = read_positions([markdown, TORN, SURE])
    assert reading is not None and reading.used == (2,)
    assert reading.score == pytest.approx(normalized_entropy([t.logprob for t in SURE]))
    assert len(reading.entropies) == 3  # every position is still reported


def test_chosen_tokens_decide_what_is_skipped() -> None:
    # A sampled generation picked " Paris" at the torn position: it carries the answer.
    reading = read_positions([TORN, SURE], chosen=[" Paris", "Paris"])
    assert reading is not None and reading.used == (0, 1)
    assert reading.score == pytest.approx(1.0)


def test_only_fillers_fall_back_to_every_usable_position() -> None:
    reading = read_positions([TORN])
    assert reading is not None and reading.used == (0,) and reading.score == pytest.approx(1.0)


def test_features_hand_computed() -> None:
    reading = read_positions([SURE, SPLIT])
    assert reading is not None
    e_sure = normalized_entropy([t.logprob for t in SURE])
    e_split = normalized_entropy([t.logprob for t in SPLIT])
    assert e_sure is not None and e_split is not None
    f = reading.features
    assert f["max"] == pytest.approx(e_split)
    assert f["mean"] == pytest.approx((e_sure + e_split) / 2)
    assert f["margin"] == pytest.approx(1.0 - (0.45 - 0.35))
    assert f["tail"] == pytest.approx(0.1)
    for name in ("max", "mean", "margin", "tail"):
        chosen = read_positions([SURE, SPLIT], feature=name)
        assert chosen is not None and chosen.score == pytest.approx(f[name])
    with pytest.raises(ValueError):
        read_positions([SURE], feature="median")
