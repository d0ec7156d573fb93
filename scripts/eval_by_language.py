"""Per-language figures for saved ``lkn eval`` runs (the report itself is per category).

    PYTHONPATH=. python scripts/eval_by_language.py RUN.json [RUN.json ...] \
        [--held-out-from RUN.json ...] [--arms a,b,...]

Runs are pooled like ``lkn eval --from``: the same item and arm twice, the last wins. A
``gateway@shape`` arm whose requests all got one intervention is named after it. Short
items: accuracy with a 95% Wilson interval per language, paired exact McNemar against
``fluido@webui`` and ``fluido@greedy``; open chat prompts: loops per language.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lkn.eval.arms import parse_arms
from lkn.eval.stats import mcnemar, wilson


def is_open(record: dict) -> bool:
    return record.get("looped") is not None


def load(paths: list[Path]) -> dict[tuple[str, str], dict]:
    merged: dict[tuple[str, str], dict] = {}
    for path in paths:
        records = json.loads(path.read_text(encoding="utf-8"))["records"]
        got: dict[str, set[str]] = {}
        for r in records:
            if r["arm"].startswith("gateway@"):
                name = r["headers"].get("X-LKN-Intervention", "none")
                if name != "none":
                    got.setdefault(r["arm"], set()).add(name)
        rename = {a: f"{next(iter(n))}@{a.partition('@')[2]}" for a, n in got.items()
                  if len(n) == 1}
        for r in records:
            r = {**r, "arm": rename.get(r["arm"], r["arm"])}
            merged[(r["item"], r["arm"])] = r
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--held-out-from", type=Path, action="append", default=[])
    parser.add_argument("--arms", default="")
    args = parser.parse_args()
    merged = load(args.runs)
    seen = {r["item"] for p in args.held_out_from
            for r in json.loads(p.read_text(encoding="utf-8"))["records"]}
    merged = {k: v for k, v in merged.items() if k[0] not in seen}
    arms = ([a.name for a in parse_arms(args.arms)] if args.arms
            else list(dict.fromkeys(a for _, a in merged)))
    langs = sorted({r["lang"] for r in merged.values()})
    print("| arm | language | short n | accuracy [95% CI] | vs fluido@webui | vs fluido@greedy "
          "| open n | loops |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in arms:
        for lang in langs:
            short = sorted(i for (i, a), r in merged.items()
                           if a == arm and r["lang"] == lang and not is_open(r))
            chats = [i for (i, a), r in merged.items()
                     if a == arm and r["lang"] == lang and is_open(r)]
            cells = []
            if short:
                ok = [bool(merged[(i, arm)]["correct"]) for i in short]
                low, high = wilson(sum(ok), len(ok))
                cells += [str(len(ok)), f"{sum(ok) / len(ok):.1%} [{low:.1%}, {high:.1%}]"]
                for base in ("fluido@webui", "fluido@greedy"):
                    both = [i for i in short if (i, base) in merged]
                    if base == arm or not both:
                        cells.append("-")
                        continue
                    m = mcnemar([bool(merged[(i, arm)]["correct"]) for i in both],
                                [bool(merged[(i, base)]["correct"]) for i in both])
                    cells.append(f"+{m.wins}/-{m.losses} p={m.p_value:.3f}")
            else:
                cells += ["0", "-", "-", "-"]
            loops = sum(bool(merged[(i, arm)].get("looped")) for i in chats)
            cells += [str(len(chats)), f"{loops}/{len(chats)}" if chats else "-"]
            print(f"| {arm} | {lang} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
