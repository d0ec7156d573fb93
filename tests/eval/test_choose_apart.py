"""``lkn eval --choose`` keeps compositions apart and does not take a screen for evidence."""

from __future__ import annotations

from lkn.care.policy import parse_policy
from lkn.eval.choose import choose_policy
from lkn.eval.runner import Record

import pytest

pytestmark = pytest.mark.fast


def rec(item: str, arm: str, correct: bool, signals: list[str],
        looped: bool | None = None) -> Record:  # fmt: skip
    return Record(item=item, category="c", lang="en", arm=arm, correct=correct,
                  signals=signals, text="", finish_reason="stop", completion_tokens=10,
                  ttft_s=None, latency_s=1.0, error=None, headers={}, looped=looped,
                  to_budget=False if looped is not None else None)


def _set(screened: int = 40) -> list[Record]:
    """40 questions greedy gets right and the default sampling wrong, 10 compositions the
    other way round (6 short, 4 open chat prompts on which greedy loops), and a screening
    arm measured on the first ``screened`` questions only."""
    records: list[Record] = []
    for n in range(40):
        records += [rec(f"q{n}", "fluido@webui", False, []),
                    rec(f"q{n}", "sampling:t=0@webui", True, [])]
        if n < screened:
            records.append(rec(f"q{n}", "sampling:t=0.3@webui", True, []))
    for n in range(6):
        records += [rec(f"c{n}", "fluido@webui", True, ["open_ended"]),
                    rec(f"c{n}", "sampling:t=0@webui", False, ["open_ended"])]
    for n in range(4):
        records += [rec(f"o{n}", "fluido@webui", True, ["open_ended"], looped=False),
                    rec(f"o{n}", "sampling:t=0@webui", True, ["open_ended"], looped=True)]
    return records


def test_compositions_are_a_group_apart_and_get_nothing() -> None:
    made = choose_policy(_set(), model="m", alpha=0.05, source="s")
    assert made["apart"] == ["open_ended"]
    assert [(r["signals"], r["intervention"]) for r in made["rules"]] == [
        (["open_ended"], "none"), (["none"], "sampling:t=0"), (["all"], "sampling:t=0")]
    # Measured on the questions alone: the compositions' losses and loops are not in it.
    kept = made["rules"][2]["evidence"]
    assert (kept["n"], kept["wins"], kept["losses"]) == (40, 40, 0) and "open_chat" not in kept
    policy = parse_policy(made, "p.json")
    assert policy.choose(("open_ended",), None)[0].name == "none"
    assert policy.choose(("math",), None)[0].name == "sampling:t=0"
    assert policy.default.name == "none"  # greedy is care here, not every request's


def test_without_apart_compositions_count_with_the_rest() -> None:
    made = choose_policy(_set(), model="m", alpha=0.05, source="s", apart=False)
    assert "apart" not in made and made["rules"] == []
    # Greedy loops on the open chat prompts, which are now in every group: rejected.
    whys = [r["why"] for r in made["rejected"] if r["intervention"] == "sampling:t=0"]
    assert whys and all("loops" in w for w in whys)


def test_a_screening_arm_is_no_evidence() -> None:
    made = choose_policy(_set(screened=20), model="m", alpha=0.05, source="s")
    screen = [r for r in made["rejected"] if r["intervention"] == "sampling:t=0.3"]
    assert screen and all("screen" in r["why"] and r["evidence"]["n"] == 20 for r in screen)
    # Measured on every question, it would have been kept (and tied with greedy).
    full = choose_policy(_set(screened=40), model="m", alpha=0.05, source="s")
    assert not [r for r in full["rejected"] if r["intervention"] == "sampling:t=0.3"]
