"""Care a client names itself (``X-LKN-Intervention``): what it costs, and how it is shed.

Only clients allowed to (``LKN_CLIENT_INTERVENTIONS``, ``LKN_CARE_API_KEY``) name their care,
bounded by ``LKN_MAX_VOTE`` (:mod:`lkn.client_request`). Such care is shed like the gateway's own
when the engines saturate: at the ``fluido`` level sampling alone stays (it costs nothing)
and an instruction or a vote goes; at ``cheaper`` the vote becomes the instruction after the
conversation (:func:`cheaper`). In admission a request holds one slot per answer it
makes the engine write: ``n``, times K for a vote.
"""

from __future__ import annotations

from dataclasses import replace

from lkn.care.specs import NONE, Intervention
from lkn.values import OVERRIDE
from lkn.values import Decision, JSONObject, Mode


def cheaper(chosen: Intervention) -> Intervention:
    """The care ``chosen`` sheds to when the engines saturate: one answer instead of K (the
    vote becomes the instruction), and the instruction after the conversation instead of in
    the system prompt, so the engine re-prefills only the instruction; sampling costs nothing
    and stays."""
    if not chosen.active:
        return chosen
    prompt = "suffix" if chosen.prompt is not None or chosen.consistency else None
    return replace(chosen, prompt=prompt, consistency=0, adaptive=False)


def shed_to(chosen: Intervention, shed: str | None) -> Intervention:
    """What ``chosen`` becomes at the homeostat's ``shed`` level (None: unchanged)."""
    if shed == "fluido":
        return (replace(chosen, prompt=None, consistency=0, adaptive=False) if chosen.sampling
                else NONE)
    if shed == "cheaper":
        return cheaper(chosen)
    return chosen


def decision(asked: Intervention, shed: str | None) -> Decision:
    """The decision for a request naming ``asked``; the shed, if any, is said (policy,
    signals, ``X-LKN-Shed``)."""
    chosen = shed_to(asked, shed)
    mode = Mode.ANALITICO if chosen.active else Mode.FLUIDO
    if chosen == asked:
        return Decision(mode, OVERRIDE, signals=("override",), intervention=chosen.name,
                        policy="requested")
    return Decision(mode, OVERRIDE, signals=("override", "shed"), intervention=chosen.name,
                    policy=f"requested (shed: {asked.name} -> {chosen.name})", shed=shed,
                    fallback="shed: engines saturated")


def overridden(mode: Mode, shed: str | None) -> Decision:
    """The decision for the mode override (``X-LKN-Mode``, a ``+analitico`` model): ANALITICO
    is care, shed like the rest (its intervention is chosen after, by :mod:`.chooser`)."""
    if mode is Mode.FLUIDO or shed is None:
        return Decision(mode, OVERRIDE, signals=("override",))
    if shed == "fluido":
        return Decision(Mode.FLUIDO, OVERRIDE, signals=("override", "shed"),
                        fallback="shed: engines saturated", shed="fluido")
    return Decision(mode, OVERRIDE, signals=("override",), shed="cheaper")


def weight(body: JSONObject, vote: int) -> int:
    """Answers the engine writes for ``body``: ``n``, times ``vote`` (K) when it votes."""
    n = body.get("n")
    answers = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return answers * max(1, vote)


def without_vote(decision: Decision, chosen: Intervention, why: str) -> Decision:
    """``decision`` (care ``chosen``) with its vote shed: the instruction instead, after the
    conversation; ``why`` is said in its policy."""
    shed = cheaper(chosen)
    return replace(decision, intervention=shed.name, shed="cheaper",
                   policy=f"{decision.policy or '-'} (shed: {chosen.name} -> {shed.name}: {why})")
