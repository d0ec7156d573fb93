"""The bodies that restart a held generation with care (see :mod:`lkn.speculative`).

The ANALITICO restart's body keeps the prompt the engine has already prefilled: the
instruction goes after the conversation, so the radix cache reuses everything before it.
As the start of the answer (``answer``, the default: an assistant message the engine
continues, ``continue_final_message``), only that prefix is prefilled again; as a user
message of its own (``message``), the new message and the assistant header; appended to
the last user message (``after``), also the chat template's end-of-turn tokens after that
message. An engine that refuses a body (a 4xx before any token: a chat template that
rejects two user turns in a row, an engine without continuation) gets the next one. Pure
functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lkn.care.instruction import add_instruction, append_instruction
from lkn.config import DecisionSettings
from lkn.values import Decision, GenerateRequest, JSONObject, Mode


def continue_answer(body: JSONObject, prefix: str) -> JSONObject | None:
    """``body`` whose answer starts with ``prefix`` (an assistant message the engine
    continues); None where that cannot be done (no messages, no prefix, or the client's own
    last message is already an assistant turn to continue)."""
    messages = body.get("messages")
    if not (isinstance(messages, list) and messages and prefix):
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") == "assistant":
        return None
    return {**body, "messages": [*messages, {"role": "assistant", "content": prefix}],
            "continue_final_message": True}


#: A restart body and where it puts the instruction (None: no instruction moved).
PlacedBody = tuple[str | None, JSONObject]


def restart_bodies(
    request: GenerateRequest,
    decision: Decision,
    body_for: Callable[[Decision], JSONObject],
    settings: DecisionSettings,
) -> list[PlacedBody]:
    """The bodies of the request that replaces a dropped held generation, the first to try
    first, each with the placement it gives the instruction: the intervention the policy
    chose, with the instruction moved after the conversation when it is the one instruction
    placed in the system prompt (other interventions are left as they are: placement None).
    The later bodies are the next placements down (``answer``, then ``message``, then
    ``after``), for an engine that rejects the former."""
    chosen = body_for(decision)
    placement = settings.restart_placement
    if not (decision.mode is Mode.ANALITICO and decision.applied
            and placement in ("after", "message", "answer")):  # fmt: skip
        return [(None, chosen)]
    untouched = body_for(replace(decision, applied=False))
    seed = add_instruction(untouched, settings.intervention)
    for key in ("messages", "prompt"):
        if not (key in chosen and _in_system_prompt(chosen, untouched, seed, key)):
            continue
        appended = append_instruction(untouched, settings.intervention)
        # The client's own answer prefix to continue: the instruction goes before it.
        if placement == "after" or key != "messages" or untouched.get("continue_final_message"):
            return [("after", {**chosen, key: appended[key]})]
        bodies: list[PlacedBody] = []
        answer = continue_answer(untouched, settings.restart_prefix)
        if placement == "answer" and answer is not None:
            bodies.append(("answer", {**chosen, key: answer[key],
                                      "continue_final_message": True}))
        own = append_instruction(untouched, settings.intervention, own_message=True)
        return [*bodies, ("message", {**chosen, key: own[key]}),
                ("after", {**chosen, key: appended[key]})]
    return [(None, chosen)]


def _in_system_prompt(chosen: JSONObject, untouched: JSONObject, seed: JSONObject,
                      key: str) -> bool:  # fmt: skip
    """Whether ``chosen`` differs from ``untouched`` at ``key`` only by the instruction in the
    system prompt: the seed's placement, or (chat) a system message the care added or
    rewrote, e.g. the instruction under the model's own default system prompt."""
    ours, theirs = chosen.get(key), untouched.get(key)
    if ours == theirs:
        return False
    if ours == seed.get(key):
        return True
    if key != "messages" or not isinstance(ours, list) or not isinstance(theirs, list):
        return False
    if not ours or not isinstance(ours[0], dict) or ours[0].get("role") != "system":
        return False
    if ours[1:] == theirs:
        return True  # a system message added
    first = theirs[0] if theirs else None
    return isinstance(first, dict) and first.get("role") == "system" and ours[1:] == theirs[1:]
