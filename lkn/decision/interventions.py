"""The family of interventions an ANALITICO request can get, written as specs.

An intervention is written as components joined by ``+`` (order does not matter):

- ``prompt`` / ``prompt:system`` / ``prompt:suffix``: the verification instruction, in the
  system prompt or after the conversation (``prompt`` alone: ``LKN_PROMPT_PLACEMENT``).
- ``sampling``: careful sampling for the sampling fields the client did not set.
- ``consistency`` / ``consistency:K``: K answers in one engine request, the agreed one wins.
- ``none``: nothing.

How each one changes an engine body is :mod:`lkn.decision.care`.
"""

from __future__ import annotations

from dataclasses import dataclass

PLACEMENTS = ("system", "suffix")


@dataclass(frozen=True)
class Intervention:
    #: ``system`` / ``suffix`` when the instruction is added, else None.
    prompt: str | None = None
    sampling: bool = False
    #: Number of answers to vote over; 0 = off.
    consistency: int = 0

    @property
    def name(self) -> str:
        parts: list[str] = []
        if self.sampling:
            parts.append("sampling")
        if self.prompt is not None:
            parts.append(f"prompt:{self.prompt}")
        if self.consistency:
            parts.append(f"consistency:{self.consistency}")
        return "+".join(parts) or "none"

    @property
    def active(self) -> bool:
        return self.prompt is not None or self.sampling or self.consistency > 0


NONE = Intervention()


def parse(text: str, placement: str = "system", k: int = 5) -> Intervention:
    """An intervention spec -> :class:`Intervention`; raises ``ValueError`` naming the fault."""
    prompt: str | None = None
    sampling = False
    consistency = 0
    parts = [p.strip().lower() for p in text.split("+")]
    if not text.strip() or any(not p for p in parts):
        raise ValueError(f"intervention {text!r} is empty or has an empty part")
    for part in parts:
        head, _, arg = part.partition(":")
        if head == "none" and len(parts) == 1 and not arg:
            return NONE
        if head == "prompt":
            where = arg or placement
            if where not in PLACEMENTS or prompt is not None:
                raise ValueError(f"intervention part {part!r}: placement must be system or suffix")
            prompt = where
        elif head == "sampling" and not arg and not sampling:
            sampling = True
        elif head == "consistency" and not consistency:
            try:
                consistency = int(arg) if arg else k
            except ValueError:
                raise ValueError(f"intervention part {part!r}: k must be an integer") from None
            if not 2 <= consistency <= 16:
                raise ValueError(f"intervention part {part!r}: k must be between 2 and 16")
        else:
            raise ValueError(
                f"unknown or repeated intervention part {part!r} "
                "(known: none, prompt[:system|:suffix], sampling, consistency[:K])"
            )
    return Intervention(prompt, sampling, consistency)
