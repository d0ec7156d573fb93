"""Protocol-neutral types shared by the core and both front-ends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

#: A JSON value as parsed by :func:`json.loads`.
JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]
JSONObject = dict[str, JSONValue]


class Route(enum.Enum):
    """Which OpenAI surface a request uses; the engine is called on the same one."""

    CHAT = "/v1/chat/completions"
    COMPLETION = "/v1/completions"

    @property
    def label(self) -> str:
        """Short name for metrics and logs."""
        return "chat" if self is Route.CHAT else "completions"


class Mode(str, enum.Enum):
    FLUIDO = "FLUIDO"
    ANALITICO = "ANALITICO"


@dataclass(frozen=True)
class GenerateRequest:
    """One validated generation request.

    ``body`` is the client's OpenAI request body; fields the gateway does not know are kept
    and passed to the engine unchanged (``tools``, ``response_format``, SGLang extras ...).
    """

    route: Route
    body: JSONObject
    request_id: str
    stream: bool = False
    include_usage: bool = False
    #: ``fluido`` / ``analitico`` / ``auto`` / None, from a header or an RPC field.
    mode_override: str | None = None
    #: Deadline for the whole request, in seconds from now (gRPC deadlines), if any.
    timeout: float | None = None
    #: An intervention spec the client asked for (``X-LKN-Intervention``), if any.
    intervention: str | None = None


@dataclass(frozen=True)
class TopToken:
    token: str
    logprob: float


@dataclass(frozen=True)
class ProbeResult:
    """What an entropy probe saw: per generated position, the top-K alternatives."""

    positions: tuple[tuple[TopToken, ...], ...]
    latency_ms: float
    engine: str
    #: The token generated at each position, when known (a held generation's own tokens).
    chosen: tuple[str, ...] = ()


#: Decision labels beside the strategies' names: requests that need no decision (title and
#: tag generation), and the mode or care a client chose itself.
HOUSEKEEPING = "housekeeping"
OVERRIDE = "override"
#: Signals of the answer's form, not of risk: they never make a request ANALITICO, and a
#: policy's "any signal" / "no signal" look past them (``lkn.decision.signals_form``).
OPEN_ENDED = "open_ended"
FORM_SIGNALS: tuple[str, ...] = (OPEN_ENDED,)


def risk_signals(signals: tuple[str, ...]) -> tuple[str, ...]:
    """``signals`` without the form signals."""
    return tuple(s for s in signals if s not in FORM_SIGNALS)


@dataclass(frozen=True)
class Decision:
    """How much care one request gets, and why."""

    mode: Mode
    strategy: str
    score: float | None = None
    threshold: float | None = None
    signals: tuple[str, ...] = ()
    #: Normalised entropy per probed token (entropy strategies only).
    entropies: tuple[float, ...] = ()
    #: Probability mass outside the top K, per probed token.
    tail_mass: tuple[float, ...] = ()
    top_tokens: tuple[tuple[TopToken, ...], ...] = ()
    probe_latency_ms: float | None = None
    #: Why the decision did not use its configured strategy (probe failed, housekeeping ...).
    fallback: str | None = None
    #: False when the decision is only reported (shadow setting, passthrough).
    applied: bool = True
    #: The entropy feature before it was ranked within its group, and that group.
    raw_score: float | None = None
    score_group: str | None = None
    #: The homeostat's shed level when it made care cheaper or skipped it (else None).
    shed: str | None = None
    #: The intervention applied (``none``, ``prompt:system``, ``sampling+prompt:suffix`` ...)
    #: and which policy rule (or setting) chose it.
    intervention: str = "none"
    policy: str | None = None

    @property
    def score_text(self) -> str:
        return "" if self.score is None else f"{self.score:.4f}"

    @property
    def gets_care(self) -> bool:
        """False for housekeeping and passthrough: no intervention, no note, never care."""
        return self.strategy not in (HOUSEKEEPING, "passthrough")

    @property
    def client_chose(self) -> bool:
        """Whether the client chose the mode or the care itself (not a strategy's verdict)."""
        return self.strategy == OVERRIDE


PASSTHROUGH = Decision(mode=Mode.FLUIDO, strategy="passthrough", applied=False)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call (OpenAI semantics): the first piece of a call has its
    ``index``, ``id``, ``type`` and ``name``; later pieces of the same index carry more of
    its ``arguments``, to append."""

    index: int
    id: str = ""
    type: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class Chunk:
    """One streamed event from the engine.

    ``raw`` is the engine's JSON payload exactly as received, so REST can pass it through
    untouched; the other fields are what the core and gRPC need from it.
    """

    raw: bytes
    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    #: A chunk that only carries usage (``choices: []``).
    usage_only: bool = False
    tool_call: bool = False
    #: Tool-call pieces of this chunk, in the engine's order.
    tool_calls: tuple[ToolCallDelta, ...] = ()
    #: More events of the same network read follow this one: a front-end may hold it back
    #: and send them together (a hint only; the chunk's content does not depend on it).
    more: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Completion:
    """A whole non-streamed answer; ``raw`` is the engine's JSON body."""

    raw: bytes
    text: str
    finish_reason: str | None
    usage: Usage | None
    decision: Decision = PASSTHROUGH
    engine: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class ModelCard:
    id: str
    owned_by: str = "lkn"
    root: str | None = None
    engine_model: str | None = None
    max_model_len: int | None = None
    extra: JSONObject = field(default_factory=dict)
