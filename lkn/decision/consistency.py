"""The consistency vote: K answers from one ``n=K`` engine request, the agreed one returned
(adaptive, :mod:`.adaptive`: two answers first, the rest only when those two disagree).

Each answer's *final answer* is read as the grader reads it (:mod:`.answers`: the last
number stated after a marker such as "=" or "the answer is", else the last number, else its
first line, folded).
The final answer most answers share wins; a tie, or answers with nothing in common, go to
the highest mean token logprob (the engine is asked for logprobs), then to the first.
Malformed choices (no text) are left out; when no choice has text (tool calls, a grammar
that allows only whitespace, a budget spent on reasoning) there is nothing to vote on, and
the first choice comes back as the engine sent it ("vote 0/0"): what the client asked for
is not the engine's failure. Only an answer with no choice at all is an
:class:`~lkn.errors.EngineError`. The client gets one choice (index 0) and the engine's
usage (all K answers' tokens: what the care cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lkn.decision.answers import fold, marked_numbers, numbers
from lkn.errors import EngineError
from lkn.values import JSONObject, Route


@dataclass(frozen=True)
class Sample:
    index: int
    text: str
    finish_reason: str | None
    mean_logprob: float
    choice: JSONObject


@dataclass(frozen=True)
class Vote:
    chosen: Sample
    key: str
    #: How many usable samples share the chosen final answer, and how many were usable.
    agreeing: int
    usable: int


def final_answer(text: str) -> str:
    """The key answers are grouped by (bounded work: answers are bounded by max_tokens)."""
    found = marked_numbers(text) or numbers(text)
    if found:
        return f"{found[-1].value:.6g}"
    for line in text.strip().splitlines():
        if line.strip():
            return " ".join(fold(line).split())[:200]
    return ""


def _mean_logprob(choice: JSONObject) -> float:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    tokens = content if isinstance(content, list) else []
    values = [t.get("logprob") for t in tokens if isinstance(t, dict)]
    finite = [float(v) for v in values
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else -math.inf


def samples(parsed: JSONObject, route: Route) -> list[Sample]:
    """The usable choices of an engine answer (malformed ones are skipped)."""
    out: list[Sample] = []
    choices = parsed.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        if route is Route.CHAT:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        finish = choice.get("finish_reason")
        index = choice.get("index")
        out.append(Sample(index if isinstance(index, int) else position, text,
                          finish if isinstance(finish, str) else None,
                          _mean_logprob(choice), choice))  # fmt: skip
    return out


def _first_choice(parsed: JSONObject) -> JSONObject | None:
    choices = parsed.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else None


def vote(candidates: Sequence[Sample]) -> Vote:
    """The agreed answer; raises ``ValueError`` when there is no candidate."""
    if not candidates:
        raise ValueError("no usable answer to vote on")
    groups: dict[str, list[Sample]] = {}
    for sample in candidates:
        groups.setdefault(final_answer(sample.text), []).append(sample)

    def strength(key: str) -> tuple[int, float, int]:
        members = groups[key]
        mean = sum(s.mean_logprob for s in members) / len(members)
        return (len(members) if key else 0, mean, -min(s.index for s in members))

    key = max(groups, key=strength)
    members = groups[key]
    chosen = max(members, key=lambda s: (s.mean_logprob, -s.index))
    return Vote(chosen, key, len(members), len(candidates))


def decide(parsed: JSONObject, route: Route, engine: str,
           keep_logprobs: bool) -> tuple[JSONObject, Vote]:  # fmt: skip
    """The one-choice answer the client gets for an ``n=K`` engine answer."""
    try:
        result = vote(samples(parsed, route))
    except ValueError as exc:
        first = _first_choice(parsed)
        if first is None:  # no choice at all: a malformed answer, the engine's fault
            raise EngineError(f"engine {engine}: {exc}", engine=engine) from None
        # Answers without text (tool calls, a grammar that allows only whitespace, a budget
        # spent thinking) cannot be voted on: the first comes back as the engine sent it.
        finish = first.get("finish_reason")
        result = Vote(Sample(0, "", finish if isinstance(finish, str) else None, -math.inf,
                             first), "", 0, 0)
    choice: JSONObject = {**result.chosen.choice, "index": 0}
    if not keep_logprobs:
        choice["logprobs"] = None
    answer: JSONObject = {**parsed, "choices": [choice]}
    return answer, result

