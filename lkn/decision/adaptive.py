"""The adaptive vote (adaptive self-consistency: stop sampling once answers agree): two
answers first; only when they disagree, the other K - 2 in a second request, and the vote
of :mod:`.consistency` over all K."""

from __future__ import annotations

from typing import cast

from lkn.decision.consistency import final_answer, samples
from lkn.values import JSONObject, JSONValue, Route

#: Answers asked for first.
FIRST = 2


def agreed(parsed: JSONObject, route: Route, count: int) -> bool:
    """Whether all ``count`` answers of ``parsed`` are usable and share one final answer
    (the adaptive vote stops there)."""
    found = samples(parsed, route)
    keys = {final_answer(s.text) for s in found}
    return len(found) == count and len(keys) == 1 and "" not in keys


def merged(first: JSONObject, more: JSONObject) -> JSONObject:
    """Two engine answers to one vote as one: the choices of both (numbered in order) and
    their usage added up (both requests' tokens: what the vote cost)."""
    choices = [c for part in (first, more) for c in _choices(part)]
    numbered = [{**c, "index": i} if isinstance(c, dict) else c for i, c in enumerate(choices)]
    usage: JSONObject | None = None
    for part in (first, more):
        counts = part.get("usage")
        if isinstance(counts, dict):
            usage = usage or {}
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = counts.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    usage[key] = cast(int, usage.get(key, 0)) + value
    return {**first, "choices": numbered, "usage": usage}


def _choices(parsed: JSONObject) -> list[JSONValue]:
    choices = parsed.get("choices")
    return list(choices) if isinstance(choices, list) else []
