"""The family of interventions an ANALITICO request can get, and how each changes its body.

An intervention is written as components joined by ``+`` (order does not matter):

- ``prompt`` / ``prompt:system`` / ``prompt:suffix``: the verification instruction, in the
  system prompt or after the conversation (``prompt`` alone: ``LKN_PROMPT_PLACEMENT``).
  In the system prompt, the model's own default system prompt is kept when the request has
  none (the chat templates of SmolLM2 and Qwen2.5 add one; replacing it costs accuracy).
- ``sampling``: careful sampling (``LKN_CAREFUL_TEMPERATURE`` / ``LKN_CAREFUL_TOP_P``) for the
  fields the client did not set; a client's explicit choice always wins.
- ``consistency`` / ``consistency:K``: K answers in one engine request (``n=K``), the one
  whose final answer most of them agree on is returned (see :mod:`.consistency`).
- ``none``: nothing.

:func:`apply` is pure and never mutates the body; the gateway calls it once per request,
for REST and gRPC alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from lkn.decision.intervention import add_instruction
from lkn.types import JSONObject, JSONValue

PLACEMENTS = ("system", "suffix")
_SEPARATOR = "\n\n"

#: Default system prompts the chat templates of known served models add when a request has
#: none (matched on the lower-cased served model name).
MODEL_SYSTEM_PROMPTS: tuple[tuple[str, str], ...] = (
    ("smollm", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    ("qwen2.5", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
)


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


@dataclass(frozen=True)
class CareSettings:
    instruction: str
    placement: str = "system"
    careful_temperature: float = 0.0
    careful_top_p: float = 1.0
    consistency_k: int = 5
    consistency_temperature: float = 0.7
    consistency_max_tokens: int = 256


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


def model_system_prompt(model: str | None) -> str | None:
    lowered = (model or "").lower()
    for key, prompt in MODEL_SYSTEM_PROMPTS:
        if key in lowered:
            return prompt
    return None


def _has_system(body: JSONObject) -> bool:
    messages = body.get("messages")
    return isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") in ("system", "developer") for m in messages
    )


def _with_system_prompt(body: JSONObject, instruction: str, model: str | None) -> JSONObject:
    """The instruction in the system prompt, on top of the model's default one if needed."""
    default = model_system_prompt(model)
    if "messages" in body and default is not None and not _has_system(body):
        messages = body.get("messages")
        assert isinstance(messages, list)
        system: JSONValue = {"role": "system", "content": default + _SEPARATOR + instruction}
        return {**body, "messages": [system, *messages]}
    return add_instruction(body, instruction)


def _with_suffix(body: JSONObject, instruction: str) -> JSONObject:
    """The instruction after the conversation: appended to the last user message."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                new: JSONValue
                if isinstance(content, list):
                    new = [*content, {"type": "text", "text": instruction}]
                elif isinstance(content, str) and content.strip():
                    if content.endswith(instruction):
                        return body
                    new = content + _SEPARATOR + instruction
                else:
                    new = instruction
                updated = list(messages)
                updated[index] = {**message, "content": new}
                return {**body, "messages": updated}
        return {**body, "messages": [*messages, {"role": "user", "content": instruction}]}
    prompt = body.get("prompt")
    if isinstance(prompt, str) and not prompt.endswith(instruction):
        return {**body, "prompt": prompt + _SEPARATOR + instruction}
    return body


def _careful(body: JSONObject, care: CareSettings) -> JSONObject:
    """Careful sampling for the fields the client left out (an explicit value always wins)."""
    added: JSONObject = {}
    if body.get("temperature") is None:
        added["temperature"] = care.careful_temperature
    if body.get("top_p") is None and care.careful_top_p < 1.0:
        added["top_p"] = care.careful_top_p
    return {**body, **added} if added else body


def _voting(body: JSONObject, care: CareSettings, k: int) -> JSONObject:
    """``n=k`` samples with the token budget; a client's own temperature is kept."""
    out: JSONObject = {**body, "n": k}
    if body.get("temperature") is None:
        out["temperature"] = care.consistency_temperature
    limit = body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool):
        out["max_tokens"] = min(limit, care.consistency_max_tokens)
    else:
        out["max_tokens"] = care.consistency_max_tokens
    out.pop("max_completion_tokens", None)
    return out


def consistency_applies(body: JSONObject, intervention: Intervention) -> bool:
    """Voting needs different samples: not for a client asking for greedy or for n > 1."""
    if intervention.consistency < 2:
        return False
    temperature = body.get("temperature")
    n = body.get("n")
    return temperature != 0 and (n is None or n == 1)


def apply(
    body: JSONObject, intervention: Intervention, care: CareSettings, model: str | None = None
) -> JSONObject:
    """``body`` with ``intervention`` applied (``body`` itself when nothing changes)."""
    out = body
    if intervention.sampling:
        out = _careful(out, care)
    if intervention.prompt == "system":
        out = _with_system_prompt(out, care.instruction, model)
    elif intervention.prompt == "suffix":
        out = _with_suffix(out, care.instruction)
    if consistency_applies(out, intervention):
        out = _voting(out, care, intervention.consistency)
    return out
