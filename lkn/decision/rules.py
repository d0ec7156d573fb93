"""The ``rules`` strategy: cheap request-level signals, English and Spanish, no engine call.

Rules read the *last user message* of a chat (text parts only; earlier turns are context the
engine already handled) or the prompt of a completions request. Any signal -> ANALITICO.
Token counts are estimated as ``ceil(characters / 4)`` (no tokenizer in the gateway).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lkn.types import GenerateRequest, JSONValue, Mode, Route

_I = re.IGNORECASE
_IM = re.IGNORECASE | re.MULTILINE
#: Very long prompts are cut to their head and tail before matching, to bound the cost.
_SCAN_LIMIT = 8000

_SIGNALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("code_fence", re.compile(r"```|~~~")),
    ("stack_trace", re.compile(
        r"Traceback \(most recent call last\)|File \"[^\"\n]+\", line \d+"
        r"|^\s+at [\w.$<>]+\([^)\n]*\)|^\s+at [^\n]+:\d+:\d+\)?$"
        r"|\b\w+(?:Error|Exception)\b(?::|\s+at\b)|\bpanicked at\b|\bsegmentation fault\b"
        r"|\bcore dumped\b|\bstack ?trace\b", _IM)),
    # Code syntax is case-sensitive so prose ("Import taxes ...") does not look like code.
    ("code", re.compile(
        r"\bdef \w+\s*\(|^\s*(?:export\s+)?(?:public\s+)?class \w+|^\s*(?:from [\w.]+ )?import \w"
        r"|#include\s*[<\"]|\bfunction\s*\w*\s*\(|\b(?:const|let|var) \w+\s*=|=>"
        r"|\bpublic (?:static )?(?:void|class|int|String)\b|\bconsole\.log\(|\bprintf\("
        r"|\bSystem\.out\.|\bfn \w+\s*\(|\bfunc \w+\s*\(|(?i:\bSELECT\b[^;\n]*\bFROM\b)",
        re.MULTILINE)),
    ("code_topic", re.compile(
        r"\b(?:python|javascript|typescript|golang|kotlin|haskell|sql|powershell|html|css"
        r"|regexp?|dockerfile|rest api|api rest)\b|\bc(?:\+\+|#)(?!\w)"
        r"|\b(?:bash|shell) (?:script|command)s?\b|\bc[oó]digo\b"
        r"|\bcode\b(?<!zip code)(?<!postal code)(?<!dress code)"
        r"|\b(?:refactor\w*|debug\w*|depur\w*|compiler|segfault|algorithm\w*|algoritmo\w*"
        r"|expresi[oó]n regular|regular expression|unit tests?|pruebas unitarias)\b", _I)),
    ("math", re.compile(
        r"\d\s*[+*×÷^]\s*\(?-?\d|\d\s+[-/]\s+\d|\d\s*=\s*-?\d|\b\d+[a-z]\s*[-+=^]"
        r"|\b[a-z]\s*[\^²³]\s*\d?|\b[xyz]\s*[-+=]\s*\(?\d|\b[fg]\([a-z]\)"
        r"|\\(?:frac|int|sum|sqrt|lim|cdot)\b|[√∫∑∏≤≥≠π]|\d+\s*%\s*(?:of|de)\s+\d", _I)),
    ("math_words", re.compile(
        r"\b(?:prove|proof|solve|calculat\w*|compute|derivative|differentiate|equations?"
        r"|theorem|lemma|probability|factori[sz]e|(?:integral|integrate|integrar) (?:of|de)"
        r"|demuestr\w*|demostr\w*|resuelv\w*|resolver|calcul(?:a|ar|e|en|o)|c[aá]lculo"
        r"|derivada|ecuaci[oó]n\w*|teorema|probabilidad|factoriza\w*)\b", _I)),
    ("multi_step", re.compile(
        r"\bstep[- ]by[- ]step\b|\bpaso a paso\b|\bfirst\b[\s\S]{0,300}?\bthen\b"
        r"|\bprimero\b[\s\S]{0,300}?\b(?:luego|despu[eé]s|entonces|a continuaci[oó]n)\b"
        r"|\bcompar(?:e|es|ed|ing|ison|a|ar|aci[oó]n|ando|emos)\b|\b(?:versus|vs\.?)(?!\w)"
        r"|\bpros and cons\b|\bventajas y desventajas\b|\btrade-?offs?\b"
        r"|\bplan(?:s|ea\w*|ific\w*|ning)?\b|\bbreak (?:it |this )?down\b|\bdesgl[oó]sa\w*"
        r"|^\s*\d+[.)]\s[^\n]*\n\s*\d+[.)]\s", _IM)),
)

_HOUSEKEEPING = re.compile(r"\s*### Task:")


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
    return _HOUSEKEEPING.match(text) is not None


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def evaluate(text: str, max_tokens_fluido: int, known_tokens: int | None = None) -> RuleVerdict:
    """Which signals fire on ``text``; ANALITICO if any does."""
    tokens = known_tokens if known_tokens is not None else estimate_tokens(text)
    signals: list[str] = []
    if tokens > max_tokens_fluido:
        signals.append("long_prompt")
    if len(text) > _SCAN_LIMIT:
        half = _SCAN_LIMIT // 2
        text = text[:half] + "\n" + text[-half:]
    for name, pattern in _SIGNALS:
        if pattern.search(text) is not None:
            signals.append(name)
    mode = Mode.ANALITICO if signals else Mode.FLUIDO
    return RuleVerdict(mode, tuple(signals), tokens)


def evaluate_request(request: GenerateRequest, max_tokens_fluido: int) -> RuleVerdict:
    text, known = rule_text(request)
    return evaluate(text, max_tokens_fluido, known)
