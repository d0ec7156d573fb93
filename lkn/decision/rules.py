"""The ``rules`` strategy: cheap request-level signals, English and Spanish, no engine call.

Rules read the *last user message* of a chat (text parts only; earlier turns are context the
engine already handled) or the prompt of a completions request. Any risk signal ->
ANALITICO; the form signal `open_ended` (a composition asked for) is reported, not risk.
Token counts are estimated as ``ceil(characters / 4)`` (no tokenizer in the gateway).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lkn.decision import signals_code, signals_form, signals_logic, signals_maths, signals_steps
from lkn.decision.scan import Scan
from lkn.values import (
    FORM_SIGNALS, OPEN_ENDED, GenerateRequest, JSONValue, Mode, Route, risk_signals,
)

#: Very long prompts are cut to their head and tail before matching, to bound the cost.
SCAN_LIMIT = 8000

#: Signal name -> its test on the text, in the order they are reported. Each pattern behind
#: them runs in linear time (see ``lkn.decision.scan``).
SIGNALS: tuple[tuple[str, Callable[[Scan], bool]], ...] = (
    ("code_fence", signals_code.code_fence),
    ("stack_trace", signals_code.stack_trace),
    ("code", signals_code.code),
    ("code_topic", signals_code.code_topic),
    ("math", signals_maths.math),
    ("math_words", signals_maths.math_words),
    ("multi_step", signals_steps.multi_step),
    # The widened view of risk: code asked for in words, word problems, proofs, counting and
    # probability, requests for reasons.
    ("code_request", signals_code.code_request),
    ("word_problem", signals_maths.word_problem),
    ("proof", signals_maths.proof),
    ("counting_probability", signals_maths.counting_probability),
    ("reasoning_cue", signals_steps.reasoning_cue),
    # Reasoning asked for in words: comparisons, deductions, calendars, number properties,
    # conversions, exact targets, a program's behaviour.
    ("comparison", signals_logic.comparison),
    ("deduction", signals_logic.deduction),
    ("calendar", signals_logic.calendar),
    ("number_property", signals_logic.number_property),
    ("conversion", signals_logic.conversion),
    ("exact_target", signals_logic.exact_target),
    ("code_behaviour", signals_logic.code_behaviour),
)
#: Every signal the rules can report (``long_prompt`` comes from the token estimate; the
#: form signal ``open_ended`` is no risk).
SIGNAL_NAMES: tuple[str, ...] = ("long_prompt", *(name for name, _ in SIGNALS), *FORM_SIGNALS)
#: Signals of a question with a checkable answer: a request with one is not ``open_ended``
#: ("explain step by step how much ..." asks for a number).
CHECKABLE: frozenset[str] = frozenset((
    "code_fence", "stack_trace", "code", "math", "math_words", "word_problem", "proof",
    "counting_probability", "comparison", "deduction", "calendar", "number_property",
    "conversion", "exact_target", "code_behaviour"))


def signals_in(text: str) -> tuple[str, ...]:
    """The text signals that fire on ``text``, read whole (``evaluate`` bounds it first):
    the risk signals, then ``open_ended`` when the text asks for a composition and no
    checkable signal fired."""
    scan = Scan.of(text)
    fired = tuple(name for name, fires in SIGNALS if fires(scan))
    if signals_form.open_ended(scan) and CHECKABLE.isdisjoint(fired):
        return (*fired, OPEN_ENDED)
    return fired


@dataclass(frozen=True)
class RuleVerdict:
    mode: Mode
    signals: tuple[str, ...]
    #: Estimated prompt tokens of the text the rules read (``ceil(chars / 4)``).
    estimated_tokens: int


def _text_of(content: JSONValue) -> str:
    """A message's text: the string, or its OpenAI ``text`` parts joined (images ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"] for part in content
            if isinstance(part, dict) and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def rule_text(request: GenerateRequest) -> tuple[str, int | None]:
    """The text the rules read, and an exact token count when the prompt is token ids."""
    body = request.body
    if request.route is Route.CHAT:
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return _text_of(message.get("content")), None
        return "", None
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, list):
        if prompt and all(isinstance(p, int) for p in prompt):
            return "", len(prompt)
        return "\n".join(p for p in prompt if isinstance(p, str)), None
    return "", None


def is_housekeeping(request: GenerateRequest) -> bool:
    """Open WebUI's title/tags/follow-up requests: the last user message starts ``### Task:``."""
    if request.route is not Route.CHAT:
        return False
    text, _ = rule_text(request)
    return text.lstrip().startswith("### Task:")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def evaluate(text: str, max_tokens_fluido: int, known_tokens: int | None = None) -> RuleVerdict:
    """Which signals fire on ``text``; ANALITICO if any does."""
    tokens = known_tokens if known_tokens is not None else estimate_tokens(text)
    signals: list[str] = []
    if tokens > max_tokens_fluido:
        signals.append("long_prompt")
    if len(text) > SCAN_LIMIT:
        half = SCAN_LIMIT // 2
        text = text[:half] + "\n" + text[-half:]
    signals.extend(signals_in(text))
    mode = Mode.ANALITICO if risk_signals(tuple(signals)) else Mode.FLUIDO
    return RuleVerdict(mode, tuple(signals), tokens)


def evaluate_request(request: GenerateRequest, max_tokens_fluido: int) -> RuleVerdict:
    text, known = rule_text(request)
    return evaluate(text, max_tokens_fluido, known)
