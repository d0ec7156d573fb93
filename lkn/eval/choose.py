"""``lkn eval --choose``: a policy from measurements, one rule per rule signal.

For every rule signal seen in the set (then "any signal" and "no signal"), each candidate is
compared, paired item by item, with FLUIDO in the same client shape (``greedy``: the client
asks for temperature 0; ``webui``: no sampling field, as Open WebUI sends). An intervention
is kept for a signal only when it wins more items than it loses *and* the exact McNemar test
gives p < alpha; the best such one (most net wins, then fewest tokens) becomes the rule.
Everything that was not kept is listed under ``rejected`` with its figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lkn.decision.interventions import parse
from lkn.eval.runner import Record
from lkn.eval.stats import mcnemar, wilson

NO_SIGNAL = "none"
ANY = "*"
_CARES_WITHOUT_INTERVENTION = ("fluido", "gateway", "analitico")


def _group_items(records: Sequence[Record]) -> dict[str, list[str]]:
    """Items per rule signal, plus ``*`` (any signal) and ``none`` (no signal)."""
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for r in records:
        if r.item in seen:
            continue
        seen.add(r.item)
        for key in [*r.signals, ANY] if r.signals else [NO_SIGNAL]:
            groups.setdefault(key, []).append(r.item)
    return groups


def _evidence(by_key: dict[tuple[str, str], Record], ids: list[str], arm: str,
              base: str) -> dict[str, Any]:  # fmt: skip
    cand = [by_key[(i, arm)].correct for i in ids]
    ref = [by_key[(i, base)].correct for i in ids]
    paired = mcnemar(cand, ref)
    low, high = wilson(sum(cand), len(ids))
    tokens = [by_key[(i, arm)].completion_tokens for i in ids]
    lat = [by_key[(i, arm)].latency_s for i in ids]
    base_lat = [by_key[(i, base)].latency_s for i in ids]
    return {
        "arm": arm, "baseline": base, "n": len(ids),
        "accuracy": sum(cand) / len(ids), "ci95": [low, high],
        "baseline_accuracy": sum(ref) / len(ids),
        "wins": paired.wins, "losses": paired.losses, "p_value": paired.p_value,
        "mean_tokens": sum(tokens) / len(tokens),
        "latency_ratio": (sum(lat) / sum(base_lat)) if sum(base_lat) > 0 else None,
    }


def choose_policy(records: Sequence[Record], *, model: str, alpha: float,
                  source: str) -> dict[str, Any]:  # fmt: skip
    """The policy file's content for these measurements."""
    by_key = {(r.item, r.arm): r for r in records}
    arms = list(dict.fromkeys(r.arm for r in records))
    candidates = [a for a in arms if a.partition("@")[0] not in _CARES_WITHOUT_INTERVENTION]
    groups = _group_items(records)
    rules: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    # Specific signals first, then any signal, then none: the gateway takes the first match.
    for signal in sorted(groups, key=lambda s: (s == NO_SIGNAL, s == ANY, s)):
        ids = groups[signal]
        best: tuple[int, float, dict[str, Any], str] | None = None
        for arm in candidates:
            care, _, shape = arm.partition("@")
            base = f"fluido@{shape}"
            if not all((i, arm) in by_key and (i, base) in by_key for i in ids):
                continue
            ev = _evidence(by_key, ids, arm, base)
            kept = ev["wins"] > ev["losses"] and ev["p_value"] < alpha
            if not kept:
                rejected.append({"signals": [signal], "intervention": parse(care).name,
                                 "shape": shape, "evidence": ev,
                                 "why": f"not better than FLUIDO at p < {alpha:g} "
                                        f"(+{ev['wins']}/-{ev['losses']}, "
                                        f"p={ev['p_value']:.3g})"})
                continue
            key = (ev["wins"] - ev["losses"], -ev["mean_tokens"])
            if best is None or key > (best[0], best[1]):
                best = (key[0], key[1], ev, care)
        if best is not None:
            ev, care = best[2], best[3]
            rules.append({
                "signals": [signal], "intervention": parse(care).name,
                "why": (f"{ev['arm']}: {ev['accuracy']:.1%} vs {ev['baseline_accuracy']:.1%} "
                        f"for {ev['baseline']} on {ev['n']} items "
                        f"(+{ev['wins']}/-{ev['losses']}, McNemar p={ev['p_value']:.3g})"),
                "evidence": ev,
            })
    return {
        "format": "lkn-policy/1",
        "name": f"{model}-measured",
        "model": model,
        "significance": alpha,
        "measured": {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "source": source, "items": len({r.item for r in records}),
                     "arms": arms},
        "rules": rules,
        "rejected": rejected,
    }
