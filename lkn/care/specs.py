"""The family of interventions an ANALITICO request can get, written as specs.

An intervention is written as components joined by ``+`` (order does not matter):

- ``prompt`` / ``prompt:system`` / ``prompt:suffix``: the verification instruction, in the
  system prompt or after the conversation (``prompt`` alone: ``LKN_PROMPT_PLACEMENT``).
- ``sampling``: careful sampling for the sampling fields the client did not set
  (``LKN_CAREFUL_TEMPERATURE`` / ``LKN_CAREFUL_TOP_P``). ``sampling:KEY=VALUE,...`` names
  its own: ``t`` (temperature), ``top_p``, ``min_p``, ``rp`` (``repetition_penalty``),
  ``fp`` / ``pp`` (``frequency_penalty`` / ``presence_penalty``) and ``dry``
  (``dry_multiplier``, llama.cpp's penalty on repeated sequences), e.g. ``sampling:rp=1.2``
  (greedy with a repetition penalty) or ``sampling:t=0.3,min_p=0.1``.
- ``consistency`` / ``consistency:K``: K answers in one engine request, the agreed one wins.
  ``consistency:K:adaptive`` (or ``consistency:adaptive``): two answers first, and the other
  K - 2 only when those two disagree (adaptive self-consistency: stop once answers agree).
- ``none``: nothing.

How each one changes an engine body is :mod:`lkn.care.bodies`.
"""

from __future__ import annotations

from dataclasses import dataclass

PLACEMENTS = ("system", "suffix")

#: ``sampling:`` keys -> (the engine's field, lowest, highest value allowed).
SAMPLING_KEYS: dict[str, tuple[str, float, float]] = {
    "t": ("temperature", 0.0, 2.0),
    "top_p": ("top_p", 0.01, 1.0),
    "min_p": ("min_p", 0.0, 1.0),
    "rp": ("repetition_penalty", 1.0, 2.0),
    "fp": ("frequency_penalty", 0.0, 2.0),
    "pp": ("presence_penalty", 0.0, 2.0),
    "dry": ("dry_multiplier", 0.0, 2.0),
}


def _sampling_params(part: str, arg: str) -> tuple[tuple[str, float], ...]:
    params: dict[str, float] = {}
    for item in arg.split(","):
        key, sep, raw = item.strip().partition("=")
        if not sep or key not in SAMPLING_KEYS or key in params:
            raise ValueError(f"intervention part {part!r}: expected KEY=VALUE pairs, keys "
                             f"{', '.join(SAMPLING_KEYS)}, each once")
        _, low, high = SAMPLING_KEYS[key]
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"intervention part {part!r}: {key} must be a number") from None
        if not low <= value <= high:
            raise ValueError(f"intervention part {part!r}: {key} must be in [{low:g}, {high:g}]")
        params[key] = value
    return tuple(sorted(params.items(), key=lambda kv: list(SAMPLING_KEYS).index(kv[0])))


@dataclass(frozen=True)
class Intervention:
    #: ``system`` / ``suffix`` when the instruction is added, else None.
    prompt: str | None = None
    sampling: bool = False
    #: Number of answers to vote over; 0 = off.
    consistency: int = 0
    #: ``sampling:KEY=VALUE,...``: the keys of :data:`SAMPLING_KEYS` and their values.
    sampling_params: tuple[tuple[str, float], ...] = ()
    #: The vote asks for two answers first and for the rest only when they disagree.
    adaptive: bool = False

    @property
    def name(self) -> str:
        parts: list[str] = []
        if self.sampling:
            parts.append("sampling" + (":" + ",".join(f"{k}={v:g}" for k, v in
                                                      self.sampling_params)
                                       if self.sampling_params else ""))
        if self.prompt is not None:
            parts.append(f"prompt:{self.prompt}")
        if self.consistency:
            parts.append(f"consistency:{self.consistency}" + (":adaptive" if self.adaptive
                                                               else ""))
        return "+".join(parts) or "none"

    @property
    def active(self) -> bool:
        return self.prompt is not None or self.sampling or self.consistency > 0


NONE = Intervention()


def parse(text: str, placement: str = "system", k: int = 5) -> Intervention:
    """An intervention spec -> :class:`Intervention`; raises ``ValueError`` naming the fault."""
    prompt: str | None = None
    sampling = False
    params: tuple[tuple[str, float], ...] = ()
    consistency, adaptive = 0, False
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
        elif head == "sampling" and not sampling:
            sampling = True
            params = _sampling_params(part, arg) if arg else ()
        elif head == "consistency" and not consistency:
            consistency, adaptive = _vote(part, arg, k)
        else:
            raise ValueError(
                f"unknown or repeated intervention part {part!r} "
                "(known: none, prompt[:system|:suffix], sampling[:KEY=VALUE,...], "
                "consistency[:K][:adaptive])"
            )
    return Intervention(prompt, sampling, consistency, params, adaptive)


def _vote(part: str, arg: str, k: int) -> tuple[int, bool]:
    """``consistency[:K][:adaptive]`` -> (K, adaptive)."""
    count, _, mode = arg.partition(":")
    if count == "adaptive" and not mode:
        count, mode = "", "adaptive"
    if mode not in ("", "adaptive"):
        raise ValueError(f"intervention part {part!r}: expected consistency[:K][:adaptive]")
    try:
        consistency = int(count) if count else k
    except ValueError:
        raise ValueError(f"intervention part {part!r}: k must be an integer") from None
    if not 2 <= consistency <= 16:
        raise ValueError(f"intervention part {part!r}: k must be between 2 and 16")
    return consistency, mode == "adaptive"
