"""Reading an answer's numbers (shared by the consistency vote and the evaluation's grader)."""

from __future__ import annotations

import pytest

from lkn.decision.answers import NumberToken, fold, marked_numbers, numbers
from lkn.eval import grader

pytestmark = pytest.mark.fast


def test_numbers_in_digits_clock_percent_and_words() -> None:
    assert [t.value for t in numbers("1,000 then 2,5 and 1/4 at 4:30")] == [1000, 2.5, 0.25, 4.5]
    assert numbers("25%") == [NumberToken(0.25, percent=True)]
    assert [t.value for t in numbers("1 in 6", odds=True)] == [pytest.approx(1 / 6)]
    assert [t.value for t in numbers("doce o twelve")] == [12, 12]
    assert [t.value for t in numbers("one of 3")] == [3]  # words only where no digit is


def test_marked_numbers_only_right_after_a_marker() -> None:
    assert [t.value for t in marked_numbers("3 + 4 = 7, so the answer is **7**")] == [7, 7, 7]
    assert marked_numbers("the result is a fraction with a denominator of 13") == []
    assert fold("Él ESTÁ") == "el esta"


def test_the_grader_reads_numbers_with_the_same_functions() -> None:
    assert (grader.fold, grader.numbers, grader.marked_numbers) == (fold, numbers, marked_numbers)


def test_a_malformed_grouping_is_no_number_and_breaks_no_vote() -> None:
    from lkn.decision.consistency import final_answer

    assert [t.value for t in numbers("0.251.000 then 7")] == [7.0]
    final_answer("The answer is 0.251.000")  # raised ValueError before
