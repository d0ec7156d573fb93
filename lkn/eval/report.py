"""Turns graded records into figures: per arm and category, with intervals and paired tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lkn.eval.arms import BASELINE, same_shape_baseline
from lkn.eval.runner import Record
from lkn.eval.stats import mcnemar, wilson

ALL = "all"


@dataclass(frozen=True)
class Cell:
    """One arm on one group of items."""

    arm: str
    group: str
    n: int
    correct: int
    low: float
    high: float
    tokens: float
    ttft_s: float | None
    latency_s: float
    errors: int
    #: Paired against always-FLUIDO at temperature 0, and against FLUIDO in the same shape.
    vs_baseline: tuple[int, int, float] | None
    vs_shape: tuple[int, int, float] | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        def paired(p: tuple[int, int, float] | None) -> dict[str, Any] | None:
            return None if p is None else {"wins": p[0], "losses": p[1], "p_value": p[2]}

        return {
            "arm": self.arm, "group": self.group, "n": self.n, "correct": self.correct,
            "accuracy": self.accuracy, "ci95": [self.low, self.high],
            "mean_completion_tokens": self.tokens, "mean_ttft_s": self.ttft_s,
            "mean_latency_s": self.latency_s, "errors": self.errors,
            "vs_fluido_greedy": paired(self.vs_baseline), "vs_fluido_same_shape": paired(self.vs_shape),
        }


def _mean(values: Iterable[float]) -> float | None:
    data = list(values)
    return sum(data) / len(data) if data else None


def _paired(
    records: dict[tuple[str, str], Record], arm: str, baseline: str, ids: Sequence[str]
) -> tuple[int, int, float] | None:
    if arm == baseline or not all((i, baseline) in records for i in ids):
        return None
    result = mcnemar([records[(i, arm)].correct for i in ids],
                     [records[(i, baseline)].correct for i in ids])
    return (result.wins, result.losses, result.p_value)


def cells(records: Sequence[Record], arms: Sequence[str]) -> list[Cell]:
    """One cell per arm for all short (checkable) items and per category."""
    records = [r for r in records if not r.open]
    by_key = {(r.item, r.arm): r for r in records}
    groups: dict[str, list[str]] = {ALL: []}
    for r in records:
        if r.arm == arms[0]:
            groups[ALL].append(r.item)
            groups.setdefault(r.category, []).append(r.item)
    return group_cells(by_key, arms, groups)


def group_cells(
    by_key: dict[tuple[str, str], Record], arms: Sequence[str], groups: dict[str, list[str]]
) -> list[Cell]:
    out: list[Cell] = []
    for group, ids in groups.items():
        for arm in arms:
            rows = [by_key[(i, arm)] for i in ids if (i, arm) in by_key]
            if not rows:
                continue
            correct = sum(r.correct for r in rows)
            low, high = wilson(correct, len(rows))
            shape_base = same_shape_baseline(arm)
            out.append(Cell(
                arm=arm, group=group, n=len(rows), correct=correct, low=low, high=high,
                tokens=_mean(r.completion_tokens for r in rows) or 0.0,
                ttft_s=_mean(r.ttft_s for r in rows if r.ttft_s is not None),
                latency_s=_mean(r.latency_s for r in rows) or 0.0,
                errors=sum(r.error is not None for r in rows),
                vs_baseline=_paired(by_key, arm, BASELINE, ids),
                vs_shape=None if shape_base == BASELINE else _paired(by_key, arm, shape_base, ids),
            ))
    return out


def signal_cells(records: Sequence[Record], arms: Sequence[str]) -> list[Cell]:
    """One cell per arm for the items each rule signal fires on (``none``: no signal).

    The rules see the prompt, not the arm, so an item has the same signals in every arm;
    a cell's ``vs_shape`` says how many of the signal's items the arm improved and worsened
    against FLUIDO in the same client shape.
    """
    records = [r for r in records if not r.open]
    by_key = {(r.item, r.arm): r for r in records}
    groups: dict[str, list[str]] = {}
    for r in records:
        if r.arm == arms[0]:
            for signal in r.signals or ["none"]:
                groups.setdefault(signal, []).append(r.item)
    return group_cells(by_key, arms, dict(sorted(groups.items())))


def signal_table(sig_cells: Sequence[Cell], arms: Sequence[str]) -> str:
    """Per rule signal: accuracy per arm, and items improved/worsened vs FLUIDO, same shape."""
    compared = [a for a in arms if not a.startswith("fluido@")]
    lines = ["per rule signal: accuracy, and items improved/worsened against FLUIDO in the "
             "same shape:",
             f"{'signal':<22} {'n':>4} " + " ".join(f"{a[:20]:>20}" for a in arms)]
    for group in dict.fromkeys(c.group for c in sig_cells):
        row = {c.arm: c for c in sig_cells if c.group == group}
        n = next(iter(row.values())).n
        parts = []
        for a in arms:
            c = row.get(a)
            paired = None if c is None else (c.vs_shape or c.vs_baseline)
            if c is None:
                parts.append(f"{'-':>20}")
            elif a in compared and paired is not None:
                parts.append(f"{f'{c.accuracy:.0%} +{paired[0]}/-{paired[1]}':>20}")
            else:
                parts.append(f"{c.accuracy:>20.0%}")
        lines.append(f"{group:<22} {n:>4} " + " ".join(parts))
    return "\n".join(lines)


def _paired_text(p: tuple[int, int, float] | None) -> str:
    return "-" if p is None else f"+{p[0]}/-{p[1]} p={p[2]:.3f}"


def table(all_cells: Sequence[Cell], arms: Sequence[str]) -> str:
    """The overall table (one row per arm), then accuracy per category and arm."""
    overall = {c.arm: c for c in all_cells if c.group == ALL}
    base_latency = overall[BASELINE].latency_s if BASELINE in overall else None
    lines = [
        f"{'arm':<26} {'accuracy':>8} {'95% CI':>13} {'vs fluido@greedy':>20} "
        f"{'vs fluido, same shape':>22} {'tokens':>6} {'TTFT s':>7} {'latency s':>9} "
        f"{'x lat':>5} {'err':>4}",
    ]
    for arm in arms:
        c = overall.get(arm)
        if c is None:
            continue
        ratio = f"{c.latency_s / base_latency:.2f}" if base_latency else "-"
        ttft = f"{c.ttft_s:.2f}" if c.ttft_s is not None else "-"
        lines.append(
            f"{arm:<26} {c.accuracy:>8.1%} {f'[{c.low:.1%}, {c.high:.1%}]':>13} "
            f"{_paired_text(c.vs_baseline):>20} {_paired_text(c.vs_shape):>22} "
            f"{c.tokens:>6.1f} {ttft:>7} {c.latency_s:>9.2f} {ratio:>5} {c.errors:>4}"
        )
    lines += _per_category(all_cells, arms, "accuracy per category (n items):",
                           lambda c: f"{c.accuracy:>16.1%}")
    lines += _per_category(all_cells, arms, "mean latency per category (s):",
                           lambda c: f"{c.latency_s:>16.2f}")
    return "\n".join(lines)


def _per_category(all_cells: Sequence[Cell], arms: Sequence[str], title: str,
                  figure: Callable[[Cell], str]) -> list[str]:  # fmt: skip
    """A blank line, ``title`` and one row per category: ``figure`` of each arm's cell."""
    lines = ["", title, f"{'category':<22} {'n':>4} " + " ".join(f"{a[:16]:>16}" for a in arms)]
    for group in [g for g in dict.fromkeys(c.group for c in all_cells) if g != ALL]:
        row = {c.arm: c for c in all_cells if c.group == group}
        n = next(iter(row.values())).n
        lines.append(f"{group:<22} {n:>4} " + " ".join(
            figure(row[a]) if a in row else f"{'-':>16}" for a in arms))
    return lines


@dataclass(frozen=True)
class OpenCell:
    """One arm on the open chat prompts: how often it degenerated."""

    arm: str
    n: int
    loops: int
    low: float
    high: float
    to_budget: int
    tokens: float
    latency_s: float
    errors: int
    #: Loops against FLUIDO in the same shape, paired: (prompts only this arm looped on,
    #: prompts only FLUIDO looped on, exact McNemar p).
    vs_shape: tuple[int, int, float] | None

    @property
    def loop_rate(self) -> float:
        return self.loops / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "n": self.n, "loops": self.loops, "loop_rate": self.loop_rate,
                "ci95": [self.low, self.high], "to_budget": self.to_budget,
                "mean_completion_tokens": self.tokens, "mean_latency_s": self.latency_s,
                "errors": self.errors,
                "loops_vs_fluido_same_shape": None if self.vs_shape is None else {
                    "more": self.vs_shape[0], "fewer": self.vs_shape[1],
                    "p_value": self.vs_shape[2]}}


def open_cells(records: Sequence[Record], arms: Sequence[str]) -> list[OpenCell]:
    """One cell per arm that answered open chat prompts, over the prompts all of those
    arms answered (saved runs pooled: a run without open prompts adds no arm here)."""
    rows = [r for r in records if r.open]
    by_key = {(r.item, r.arm): r for r in rows}
    arms = [a for a in arms if any(r.arm == a for r in rows)]
    ids = [i for i in dict.fromkeys(r.item for r in rows)
           if all((i, a) in by_key for a in arms)]
    out: list[OpenCell] = []
    for arm in arms:
        mine = [by_key[(i, arm)] for i in ids]
        if not mine:
            continue
        loops = sum(bool(r.looped) for r in mine)
        low, high = wilson(loops, len(mine))
        base = same_shape_baseline(arm)
        paired = None
        if base != arm and all((i, base) in by_key for i in ids):
            test = mcnemar([bool(by_key[(i, arm)].looped) for i in ids],
                           [bool(by_key[(i, base)].looped) for i in ids])
            paired = (test.wins, test.losses, test.p_value)
        out.append(OpenCell(
            arm=arm, n=len(mine), loops=loops, low=low, high=high,
            to_budget=sum(bool(r.to_budget) for r in mine),
            tokens=_mean(r.completion_tokens for r in mine) or 0.0,
            latency_s=_mean(r.latency_s for r in mine) or 0.0,
            errors=sum(r.error is not None for r in mine), vs_shape=paired))
    return out


def open_table(cells_: Sequence[OpenCell]) -> str:
    """Open chat: loop rate (95% CI), answers that ran to the budget, tokens, latency."""
    if not cells_:
        return "open chat: no prompt answered in every arm"
    lines = [f"open chat ({cells_[0].n} prompts, no max_tokens: the gateway's default budget):",
             f"{'arm':<26} {'loops':>6} {'loop rate':>9} {'95% CI':>15} "
             f"{'loops vs fluido, same shape':>28} {'to budget':>9} {'tokens':>7} "
             f"{'latency s':>9} {'err':>4}"]
    for c in cells_:
        paired = _paired_text(c.vs_shape)
        lines.append(f"{c.arm:<26} {c.loops:>6} {c.loop_rate:>9.1%} "
                     f"{f'[{c.low:.1%}, {c.high:.1%}]':>15} {paired:>28} {c.to_budget:>9} "
                     f"{c.tokens:>7.1f} {c.latency_s:>9.2f} {c.errors:>4}")
    return "\n".join(lines)
