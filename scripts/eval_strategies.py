"""Which strategy picks the requests that care helps, replayed from saved answers.

For items answered both ways (FLUIDO: ``fluido@webui``, llama.cpp's default sampling; care:
``--care`` arm, e.g. ``sampling:dry=0.8@webui``) in saved ``lkn eval`` runs, and scored by the
entropy probe in a saved ``bench_decisions.py --phases auroc`` records file (the mean
entropy of the first ``--tokens`` answer tokens, filler skipped), each strategy's accuracy
when ANALITICO gets the care and FLUIDO does not:

- the two fixed modes (every request FLUIDO, every request ANALITICO);
- ``rules``: ANALITICO on a risk signal of today's rules;
- ``entropy`` at care rates 30/50/70% (the threshold at that quantile of the scores: the
  calibration the homeostat does);
- ``hybrid``: the rules, and the entropy at 30% on the rest.

    PYTHONPATH=. python scripts/eval_strategies.py --records AUROC_RECORDS.json RUN.json ...

A replay, not a live run: each item's answers come from the runs, and the score from the
probe's own greedy answer to the same prompt. Paired against the fixed ANALITICO mode
(exact McNemar), 95% Wilson intervals, per language.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decisions import item_score  # noqa: E402
from lkn.decision import rules  # noqa: E402
from lkn.eval.stats import mcnemar, wilson  # noqa: E402
from lkn.values import risk_signals  # noqa: E402


def _answers(paths: list[Path], care: str) -> dict[str, dict[str, bool]]:
    """item -> {"fluido": correct, "care": correct} where both were measured."""
    seen: dict[str, dict[str, bool]] = {}
    for path in paths:
        for r in json.loads(path.read_text(encoding="utf-8"))["records"]:
            key = {"fluido@webui": "fluido", care: "care"}.get(r["arm"])
            if key is not None and r.get("looped") is None:
                seen.setdefault(r["item"], {})[key] = bool(r["correct"])
    return {item: got for item, got in seen.items() if len(got) == 2}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def strategies(rows: list[dict[str, Any]]) -> dict[str, list[bool]]:
    """Strategy name -> ANALITICO per row."""
    scores = [r["score"] for r in rows]
    risky = [bool(risk_signals(rules.evaluate(r["prompt"], 150).signals)) for r in rows]
    out: dict[str, list[bool]] = {"all FLUIDO": [False] * len(rows),
                                  "all ANALITICO": [True] * len(rows), "rules": risky}
    for rate in (0.3, 0.5, 0.7):
        threshold = _quantile(scores, 1.0 - rate)
        out[f"entropy {rate:.0%}"] = [s >= threshold for s in scores]
    high = _quantile(scores, 0.7)
    out["hybrid (rules, entropy 30%)"] = [r or s >= high for r, s in zip(risky, scores)]
    return out


def report(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}: {len(rows)} items")
    print("| strategy | ANALITICO | accuracy [95% CI] | vs all ANALITICO |")
    print("| --- | --- | --- | --- |")
    picked = strategies(rows)
    always = [r["care"] for r in rows]
    for name, analitico in picked.items():
        right = [r["care"] if a else r["fluido"] for r, a in zip(rows, analitico)]
        low, high = wilson(sum(right), len(rows))
        paired = mcnemar(right, always)
        print(f"| {name} | {sum(analitico)}/{len(rows)} | {sum(right) / len(rows):.1%} "
              f"[{low:.1%}, {high:.1%}] | +{paired.wins}/-{paired.losses} "
              f"p={paired.p_value:.3g} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="saved lkn eval runs")
    parser.add_argument("--records", type=Path, required=True, help="auroc records file")
    parser.add_argument("--care", default="sampling:dry=0.8@webui")
    parser.add_argument("--tokens", type=int, default=4)
    args = parser.parse_args()
    answers = _answers(args.runs, args.care)
    rows = []
    for record in json.loads(args.records.read_text(encoding="utf-8")):
        got = answers.get(record["id"])
        if got is not None:
            rows.append({"lang": record["lang"], "prompt": record["prompt"],
                         "score": item_score(record, args.tokens, "mean", True), **got})
    if not rows:
        print("no item is in both the records and the runs", file=sys.stderr)
        return 2
    print(f"care = {args.care}; score = mean entropy of the first {args.tokens} tokens")
    report(rows, "all")
    for lang in ("en", "es"):
        report([r for r in rows if r["lang"] == lang], lang)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
