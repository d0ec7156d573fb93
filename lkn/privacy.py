"""Engine error text without the request in it.

Engines echo what they were sent when they refuse it (SGLang's validation errors quote the
offending value: ``input_value='…'``, ``'input': '…'``), and that text reaches logs, error
bodies and the probe's fallback reason. :func:`scrub` keeps the engine's words and drops every
quoted value and the value after ``input_value=`` / ``input:``; what is left is cut short.
"""

from __future__ import annotations

import re

#: Longest engine message kept (after scrubbing).
MAX_CHARS = 300
_QUOTED = re.compile(r"(?<![A-Za-z])'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|`[^`\n]*`")
_VALUE = re.compile(r"(input(?:_value)?['\"]?\s*[=:]\s*)[^,\]\}\n]*", re.IGNORECASE)
_UNCLOSED = re.compile(r"(?:(?<![A-Za-z])'|[\"`])[^\n]*")  # not the one in "model's"


def scrub(message: str) -> str:
    """``message`` with quoted values (which may be the client's text) replaced by ``…``."""
    text = message[: MAX_CHARS * 8]
    text = _QUOTED.sub("…", text)
    text = _VALUE.sub(r"\1…", text)
    text = _UNCLOSED.sub("…", text)  # a quote left open: whatever follows it may be input
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
