"""Grading an open answer for degeneration: did it loop, did it run to the budget.

A loop is what the gateway's own loop guard (:mod:`lkn.loopguard`, at its default settings)
sees when the answer's streamed pieces are fed to it in order: through the gateway, an
answer the guard stopped ends right where the guard saw the loop, so it is found again
here; an answer from an engine with no guard in front is judged by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lkn.loopguard import LoopGuard, LoopSettings


@dataclass(frozen=True)
class Degeneration:
    looped: bool
    #: Ended by the token budget (finish ``length``) without a loop.
    to_budget: bool


def judge(pieces: Iterable[str], finish_reason: str | None,
          settings: LoopSettings | None = None) -> Degeneration:  # fmt: skip
    guard = LoopGuard(settings or LoopSettings())
    looped = any(guard.feed(piece) is not None for piece in pieces)
    return Degeneration(looped, finish_reason == "length" and not looped)
