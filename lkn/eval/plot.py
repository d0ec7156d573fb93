"""The PNG: accuracy (with 95% intervals) and mean latency, per arm and category."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lkn.eval.report import ALL, Cell


def plot(all_cells: Sequence[Cell], arms: Sequence[str], path: Path, title: str) -> Path:
    """Write the figure to ``path``; raises ``ImportError`` when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [ALL] + [g for g in dict.fromkeys(c.group for c in all_cells) if g != ALL]
    index = {(c.arm, c.group): c for c in all_cells}
    width = 0.8 / max(1, len(arms))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, 1.4 * len(groups) * len(arms) / 3), 9),
                                      sharex=True)
    for k, arm in enumerate(arms):
        xs, acc, err_low, err_high, lat = [], [], [], [], []
        for g, group in enumerate(groups):
            cell = index.get((arm, group))
            if cell is None:
                continue
            xs.append(g + (k - (len(arms) - 1) / 2) * width)
            acc.append(100 * cell.accuracy)
            err_low.append(max(0.0, 100 * (cell.accuracy - cell.low)))
            err_high.append(max(0.0, 100 * (cell.high - cell.accuracy)))
            lat.append(cell.latency_s)
        top.bar(xs, acc, width, yerr=[err_low, err_high], capsize=2, label=arm)
        bottom.bar(xs, lat, width, label=arm)
    top.set_ylabel("accuracy, % (95% Wilson interval)")
    top.set_ylim(0, 100)
    top.set_title(title)
    top.legend(fontsize=8, ncol=min(4, len(arms)))
    top.grid(axis="y", alpha=0.3)
    bottom.set_ylabel("mean latency, s")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(len(groups)))
    bottom.set_xticklabels([g.replace("_", "\n") for g in groups], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
