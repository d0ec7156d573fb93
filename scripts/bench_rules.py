"""Benchmark the rules strategy on hostile text: CPU per decision of a 100 KB request, and the
worst-case cost per KB of text the rules read.

    PYTHONPATH=. python scripts/bench_rules.py [--json-only]

``rules.evaluate`` is what a request costs (it reads at most the head and tail of a long
text); ``rules.signals_in`` reads the text whole, so its cost per KB is the patterns' own
(linear) cost. CPU time of this thread, best of five. Prints a table with the target, then one
JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lkn.decision import rules  # noqa: E402

TARGET_MS = 5.0
SIZE = 100_000
#: Runs of one character and short repeating shapes that the patterns start or continue on.
HOSTILE = {
    "newlines": "\n", "spaces": " ", "digits": "7", "tabs": "\t", "crlf": "\r\n",
    "punctuation": " \n\t,.;:!?", "digit-space": "1 ", "digit-newline": "1\n",
    "word-space": "a ", "letters": "a", "numbered-list": "1. x\n", "first": "first ",
    "select": "SELECT ", "write": "write a ", "explain": "explain ", "def": "def ",
    "stack-frames": "\n\tat x", "errors": "aError ", "percent": "1%",
}
PROSE = ("Last summer we rented a small house near the coast for two weeks; every evening we "
         "ate outside until the mosquitoes chased us indoors. ")


def _cpu_ms(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        call()
        best = min(best, time.thread_time() - started)
    return best * 1e3


def _text(unit: str, size: int = SIZE) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    decide: dict[str, float] = {}
    per_kb: dict[str, float] = {}
    for name, unit in {**HOSTILE, "prose": PROSE}.items():
        text = _text(unit)
        decide[name] = _cpu_ms(lambda: rules.evaluate(text, 150))
        per_kb[name] = _cpu_ms(lambda: rules.signals_in(text)) / (SIZE / 1000)
    hostile = {k: v for k, v in decide.items() if k != "prose"}
    figures = {
        "rules_decide_100kb_newlines_ms": decide["newlines"],
        "rules_decide_100kb_digits_ms": decide["digits"],
        "rules_decide_100kb_spaces_ms": decide["spaces"],
        "rules_decide_100kb_worst_ms": max(hostile.values()),
        "rules_decide_100kb_worst_input": max(hostile, key=hostile.__getitem__),
        "rules_decide_100kb_prose_ms": decide["prose"],
        "rules_cost_per_kb_worst_ms": max(per_kb.values()),
        "rules_cost_per_kb_worst_input": max(per_kb, key=per_kb.__getitem__),
        "rules_cost_per_kb_prose_ms": per_kb["prose"],
        "rules_scan_limit_chars": rules.SCAN_LIMIT,
    }
    if not args.json_only:
        print(f"{'input (100 KB)':<16} {'decide ms':>10} {'whole-text ms/KB':>17}")
        for name in decide:
            print(f"{name:<16} {decide[name]:>10.3f} {per_kb[name]:>17.4f}")
        for key in ("newlines", "digits", "spaces"):
            verdict = "ok" if decide[key] < TARGET_MS else "MISSED"
            print(f"target: 100 KB of {key} decided in < {TARGET_MS} ms CPU: "
                  f"{decide[key]:.3f} ms {verdict}")
        print(f"worst case per KB read: {figures['rules_cost_per_kb_worst_ms']:.4f} ms "
              f"({figures['rules_cost_per_kb_worst_input']})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
