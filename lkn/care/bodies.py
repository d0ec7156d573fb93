"""How each intervention changes an engine body (pure functions; the body is never mutated).

- prompt, ``system``: the instruction in the system prompt; when the request has none, the
  model's own default system prompt is kept above it (the chat templates of SmolLM2 and
  Qwen2.5 add one, and replacing it costs accuracy). ``suffix``: after the conversation, so
  the prompt the engine already prefilled stays a shared prefix.
- sampling: ``LKN_CAREFUL_TEMPERATURE`` / ``LKN_CAREFUL_TOP_P`` for the fields the client left
  out; a client's explicit choice always wins.
- consistency: ``n=K`` with ``LKN_CONSISTENCY_TEMPERATURE`` (unless the client set one) and the
  token budget ``LKN_CONSISTENCY_MAX_TOKENS``; skipped for a client asking for greedy or n>1.
"""

from __future__ import annotations

from dataclasses import dataclass

from lkn.care.instruction import add_instruction, append_instruction
from lkn.care.specs import SAMPLING_KEYS, Intervention
from lkn.values import JSONObject, JSONValue

_SEPARATOR = "\n\n"

#: Default system prompts the chat templates of known served models add when a request has
#: none (matched on the lower-cased model name).
MODEL_SYSTEM_PROMPTS: tuple[tuple[str, str], ...] = (
    ("smollm", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    ("qwen2.5", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
)


@dataclass(frozen=True)
class CareSettings:
    instruction: str
    placement: str = "system"
    careful_temperature: float = 0.0
    careful_top_p: float = 1.0
    consistency_k: int = 5
    consistency_temperature: float = 0.7
    consistency_max_tokens: int = 256


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


def _careful(body: JSONObject, care: CareSettings,
             params: tuple[tuple[str, float], ...] = ()) -> JSONObject:  # fmt: skip
    """Careful sampling for the fields the client left out (an explicit value always wins):
    the intervention's own ``sampling:`` values, else the configured temperature and top_p."""
    wanted: dict[str, float] = {"temperature": care.careful_temperature}
    if care.careful_top_p < 1.0:
        wanted["top_p"] = care.careful_top_p
    for key, value in params:
        wanted[SAMPLING_KEYS[key][0]] = value
    added: JSONObject = {k: v for k, v in wanted.items() if body.get(k) is None}
    return {**body, **added} if added else body


def _voting(body: JSONObject, care: CareSettings, k: int) -> JSONObject:
    """``n=k`` samples with the token budget; a client's own temperature is kept."""
    out: JSONObject = {**body, "n": k}
    if body.get("logprobs") is None:
        out["logprobs"] = True  # ties go to the highest mean logprob; removed from the answer
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
        out = _careful(out, care, intervention.sampling_params)
    if intervention.prompt == "system":
        out = _with_system_prompt(out, care.instruction, model)
    elif intervention.prompt == "suffix":
        out = append_instruction(out, care.instruction, once=True)
    if consistency_applies(out, intervention):
        out = _voting(out, care, intervention.consistency)
    return out


