"""Core types -> REST JSON and headers."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import PurePath

from lkn.values import Decision, JSONObject, JSONValue, ModelCard

_CREATED = int(time.time())


def decision_headers(decision: Decision, request_id: str, engine: str | None) -> dict[str, str]:
    """The decision as ``X-LKN-*`` headers; one with nothing to say (no score: rules, or no
    probe) is left out, never sent empty."""
    headers = {
        "X-Request-Id": request_id,
        "X-LKN-Mode": decision.mode.value,
        "X-LKN-Strategy": decision.strategy,
        "X-LKN-Score": decision.score_text,
        "X-LKN-Intervention": decision.intervention,
    }
    if decision.policy:
        headers["X-LKN-Policy"] = decision.policy
    if decision.signals:
        headers["X-LKN-Signals"] = ",".join(decision.signals)
    if not decision.applied:
        headers["X-LKN-Applied"] = "false"
    if decision.fallback:
        headers["X-LKN-Fallback"] = decision.fallback
    if decision.shed:
        headers["X-LKN-Shed"] = decision.shed
    if engine:
        headers["X-LKN-Engine"] = engine
    return {name: value for name, value in headers.items() if value}


def _finite(value: float | None) -> float | None:
    """JSON has no -inf/NaN: a missing logprob or an unusable position becomes null."""
    return value if value is not None and math.isfinite(value) else None


def decision_json(decision: Decision, request_id: str) -> JSONObject:
    return {
        "request_id": request_id,
        "mode": decision.mode.value,
        "strategy": decision.strategy,
        "intervention": decision.intervention,
        "policy": decision.policy,
        "score": _finite(decision.score),
        "threshold": _finite(decision.threshold),
        "signals": list(decision.signals),
        "entropies": [_finite(e) for e in decision.entropies],
        "tail_mass": [_finite(t) for t in decision.tail_mass],
        "top_tokens": [
            [{"token": t.token, "logprob": _finite(t.logprob)} for t in position]
            for position in decision.top_tokens
        ],
        "probe_latency_ms": _finite(decision.probe_latency_ms),
        "fallback": decision.fallback,
        "applied": decision.applied,
        "raw_score": _finite(decision.raw_score),
        "score_group": decision.score_group,
        "shed": decision.shed,
    }


def model_json(card: ModelCard) -> JSONObject:
    data: JSONObject = {
        "id": card.id,
        "object": "model",
        "created": _CREATED,
        "owned_by": card.owned_by,
        "root": card.root or card.id,
        "parent": None,
    }
    if card.max_model_len is not None:
        data["max_model_len"] = card.max_model_len
    data.update(card.extra)
    return data


def file_names_only(value: object, paths: Iterable[str]) -> JSONValue:
    """``value`` (JSON-like) with each of ``paths`` shown as its file name only."""
    swaps = sorted({(p, PurePath(p).name) for p in paths if p and PurePath(p).name != p},
                   key=lambda swap: -len(swap[0]))

    def walk(item: object) -> JSONValue:
        if isinstance(item, str):
            for path, name in swaps:
                item = item.replace(path, name)
            return item
        if isinstance(item, dict):
            return {str(key): walk(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(inner) for inner in item]
        if item is None or isinstance(item, (bool, int, float)):
            return item
        return str(item)

    return walk(value)
