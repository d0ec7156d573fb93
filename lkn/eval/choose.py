"""``lkn eval --choose``: a policy from measurements, one rule per group of requests.

The groups are, first, the requests for a composition (``open_ended``: stories, lists,
explanations, how-tos; :mod:`lkn.decision.signals_form`), kept apart from all the others;
then every rule signal seen among the rest, "any signal", "no signal" and "all requests"
(every other request the policy sees). When the compositions keep no intervention and
another group keeps one, the policy's first rule gives them none, so that a rule chosen
without them never reaches them. In each group, every candidate is compared, paired item
by item, with FLUIDO in the same client shape (``greedy``: the client asks for temperature 0;
``webui``: no sampling field, as Open WebUI sends), on the items measured in both arms. An
intervention is kept for a group only when it wins more items than it loses *and* the exact
McNemar test gives p < alpha; the best such one (most net wins, then fewest tokens) becomes
the rule. A candidate measured on only part of a group's items (a screening arm, dropped
after the screen) is not eligible there: the items that picked it in the screen cannot
confirm it. Each group is tested at alpha on its own, without a multiple-comparison
correction. Accuracy is judged on the short (checkable) items only. On the group's open chat
prompts, an intervention that loops on more of them than FLUIDO in the same shape
(:mod:`lkn.eval.degeneration`) is rejected, however many short answers it wins: a user
reads the chat, not the benchmark. Everything that was not kept is listed under
``rejected`` with its figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lkn.care.specs import NONE, parse
from lkn.care.policy import ALL, ANY, NO_SIGNAL
from lkn.values import OPEN_ENDED
from lkn.eval.arms import same_shape_baseline
from lkn.eval.runner import Record
from lkn.eval.stats import mcnemar, wilson


_CARES_WITHOUT_INTERVENTION = ("fluido", "gateway", "analitico")


def _group_items(records: Sequence[Record], apart: bool) -> dict[str, list[str]]:
    """Items per rule signal, plus ``*`` (any signal), ``none`` (no signal) and ``all``.

    A composition asked for (``open_ended``) is a group of its own, apart from the others:
    its rule comes first, so every other group holds the requests that are not one.
    """
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for r in records:
        if r.item in seen:
            continue
        seen.add(r.item)
        signals = r.signals if apart else [s for s in r.signals if s != OPEN_ENDED]
        if OPEN_ENDED in signals:
            keys = [OPEN_ENDED]
        else:
            keys = [*signals, ANY, ALL] if signals else [NO_SIGNAL, ALL]
        for key in keys:
            groups.setdefault(key, []).append(r.item)
    return groups


def _order(signal: str) -> tuple[bool, bool, bool, bool, str]:
    """Compositions first, then specific signals, any signal, none, all (the gateway takes
    the first rule that matches)."""
    return (signal != OPEN_ENDED, signal == ALL, signal == NO_SIGNAL, signal == ANY, signal)


def _kept_apart(rules: list[dict[str, Any]], groups: dict[str, list[str]]) -> None:
    """Compositions get no intervention when their own group kept none and a later rule
    would otherwise reach them: the other groups were measured without them."""
    if OPEN_ENDED not in groups or not rules or rules[0]["signals"] == [OPEN_ENDED]:
        return
    rules.insert(0, {
        "signals": [OPEN_ENDED], "intervention": NONE.name,
        "why": (f"{len(groups[OPEN_ENDED])} requests for a composition (open_ended) were "
                f"measured apart from the others and no intervention beat FLUIDO on them; "
                f"the rules after this one were chosen without them"),
    })


def as_measured(records: Sequence[Record]) -> list[Record]:
    """One run's records, its ``gateway@shape`` arm named after the intervention it got.

    When every request of a gateway arm that got an intervention got the same one (a trial
    policy in force), the arm is that intervention's: ``gateway@webui`` becomes
    ``sampling@webui``. Its requests that got none (shed by the homeostat) stay in it, as the
    gateway's measured behaviour. A gateway arm with mixed interventions keeps its name.
    """
    got: dict[str, set[str]] = {}
    for r in records:
        if r.arm.partition("@")[0] == "gateway":
            name = r.headers.get("X-LKN-Intervention", NONE.name)
            if name != NONE.name:
                got.setdefault(r.arm, set()).add(name)
    renamed = {arm: f"{next(iter(names))}@{arm.partition('@')[2]}"
               for arm, names in got.items() if len(names) == 1}
    return [replace(r, arm=renamed.get(r.arm, r.arm)) for r in records]


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


def _loops(by_key: dict[tuple[str, str], Record], ids: list[str], arm: str,
           base: str) -> dict[str, Any] | None:  # fmt: skip
    """Loops of ``arm`` and of FLUIDO on the open chat prompts both answered."""
    chats = [i for i in ids if by_key[(i, arm)].open]
    if not chats:
        return None
    loops = sum(bool(by_key[(i, arm)].looped) for i in chats)
    base_loops = sum(bool(by_key[(i, base)].looped) for i in chats)
    low, high = wilson(loops, len(chats))
    return {"n": len(chats), "loops": loops, "loop_rate": loops / len(chats),
            "ci95": [low, high], "baseline_loops": base_loops,
            "baseline_loop_rate": base_loops / len(chats),
            "to_budget": sum(bool(by_key[(i, arm)].to_budget) for i in chats)}


def choose_policy(records: Sequence[Record], *, model: str, alpha: float, source: str,
                  apart: bool = True) -> dict[str, Any]:  # fmt: skip
    """The policy file's content for these measurements (``apart``: compositions are a
    group of their own; without it, a policy chosen before the form signal is reproduced)."""
    by_key = {(r.item, r.arm): r for r in records}
    arms = list(dict.fromkeys(r.arm for r in records))
    candidates = [a for a in arms if a.partition("@")[0] not in _CARES_WITHOUT_INTERVENTION]
    groups = _group_items(records, apart)
    rules: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for signal in sorted(groups, key=_order):
        rule = _rule_for(signal, groups[signal], candidates, by_key, alpha, rejected)
        if rule is not None:
            rules.append(rule)
    if apart:
        _kept_apart(rules, groups)
    return {
        "format": "lkn-policy/1",
        "name": f"{model}-measured",
        "model": model,
        "significance": alpha,
        "measured": {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "source": source,
                     "items": len({r.item for r in records if not r.open}),
                     "open_chat_prompts": len({r.item for r in records if r.open}),
                     "arms": arms},
        **({"apart": [OPEN_ENDED]} if apart else {}),
        "rules": rules,
        "rejected": rejected,
        "notes": (f"Each group (rule signal, any signal, no signal, all requests) is tested at "
                  f"p < {alpha:g} on its own, without a multiple-comparison correction; the "
                  f"smaller a group, the less power its test has, so on a small set the "
                  f"whole-set group 'all' is the one that can reach it."),
    }


def _rule_for(signal: str, group: list[str], candidates: list[str],
              by_key: dict[tuple[str, str], Record], alpha: float,
              rejected: list[dict[str, Any]]) -> dict[str, Any] | None:  # fmt: skip
    """The rule for one group: its best kept candidate (most net wins, then fewest tokens),
    or None; every candidate not kept is appended to ``rejected``."""
    best: tuple[tuple[int, float], dict[str, Any], str] | None = None
    for arm in candidates:
        care, _, shape = arm.partition("@")
        evidence = _candidate_evidence(by_key, group, arm, same_shape_baseline(arm))
        if evidence is None:
            continue
        why = _why_rejected(evidence, alpha)
        if why is not None:
            rejected.append({"signals": [signal], "intervention": parse(care).name,
                             "shape": shape, "evidence": evidence, "why": why})
            continue
        key = (evidence["wins"] - evidence["losses"], -evidence["mean_tokens"])
        if best is None or key > best[0]:
            best = (key, evidence, care)
    if best is None:
        return None
    _, evidence, care = best
    return {
        "signals": [signal], "intervention": parse(care).name,
        "why": (f"{evidence['arm']}: {evidence['accuracy']:.1%} vs "
                f"{evidence['baseline_accuracy']:.1%} for {evidence['baseline']} on "
                f"{evidence['n']} items (+{evidence['wins']}/-{evidence['losses']}, "
                f"McNemar p={evidence['p_value']:.3g}; "
                f"each group tested at p < {alpha:g}, no multiple-comparison "
                f"correction)"),
        "evidence": evidence,
    }


def _candidate_evidence(by_key: dict[tuple[str, str], Record], group: list[str], arm: str,
                        base: str) -> dict[str, Any] | None:  # fmt: skip
    """``arm`` against ``base`` on the group's short items both measured (None: there is
    none), with its loops on the open chat prompts both answered under ``open_chat``."""
    both = [i for i in group if (i, arm) in by_key and (i, base) in by_key]
    ids = [i for i in both if not by_key[(i, arm)].open]
    if not ids:
        return None
    evidence = _evidence(by_key, ids, arm, base)
    evidence["of"] = sum(1 for i in group if (i, base) in by_key and not by_key[(i, base)].open)
    loops = _loops(by_key, both, arm, base)
    if loops is not None:
        evidence["open_chat"] = loops
    return evidence


def _why_rejected(evidence: dict[str, Any], alpha: float) -> str | None:
    """Why a candidate with this evidence is not kept (None: it is)."""
    score = f"+{evidence['wins']}/-{evidence['losses']}, p={evidence['p_value']:.3g}"
    if evidence["n"] < evidence.get("of", 0):
        return (f"measured on {evidence['n']} of the group's {evidence['of']} items: a "
                f"screen, whose items chose it, is no evidence for it ({score})")
    if not (evidence["wins"] > evidence["losses"] and evidence["p_value"] < alpha):
        return f"not better than FLUIDO at p < {alpha:g} ({score})"
    loops = evidence.get("open_chat")
    if loops is not None and loops["loops"] > loops["baseline_loops"]:
        return (f"loops on more open chat prompts than FLUIDO ({loops['loops']}/{loops['n']} "
                f"against {loops['baseline_loops']}/{loops['n']}), although it wins short "
                f"answers ({score})")
    return None
