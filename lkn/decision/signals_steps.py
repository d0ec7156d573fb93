"""Rule signals about the shape of the task: several steps, and asking for reasons."""

from __future__ import annotations

import re

from lkn.decision.scan import Scan, any_match, words

#: A plan asked for (not "plans" in chat: "any plans for the weekend?").
_PLAN_REQUESTS = (
    *(rf"{verb} (?:me )?(?:a |an |my |our |the )?(?:\w+ )?plan\b"
      for verb in ("make", "create", "write", "draw up", "build", "give", "prepare", "need",
                   "design")),
    r"plan (?:a|an|my|our|the) \w+", r"planning (?:a|an|my|our|the) \w+",
    r"planific\w*", r"planea\w*", r"planee\w*",
    *(rf"{verb}(?:me)? un plan\b" for verb in ("haz", "crea", "prepara", "dise[nñ]a",
                                                "escribe", "dame", "necesito")),
    r"un plan de\b")
_MULTI_STEP = (
    words(r"step[- ]by[- ]step\b", r"paso a paso\b",
           r"compar(?:e|es|ed|ing|ison|a|ar|aci[oó]n|ando|emos)\b", r"versus\b",
           r"vs(?!\w)", r"pros and cons\b", r"ventajas y desventajas\b", r"trade-?offs?\b",
           *_PLAN_REQUESTS, r"break (?:it |this )?down\b", r"desgl[oó]sa\w*"),
    re.compile(r"\n[^\S\n]*\d+[.)][^\S\n][^\n]*\n[^\S\n]*\d+[.)]\s"),
)
#: "first ... then" within ``_SEQUENCE_WINDOW`` characters, by one pass over the cue words.
_SEQUENCE_TOKEN = words(r"first\b", r"then\b", r"primero\b", r"luego\b", r"despu[eé]s\b",
                         r"entonces\b", r"a continuaci[oó]n\b")
_SEQUENCE_WINDOW = 300

#: Asking for justification or reasoning.
_REASONING_CUE = words(
    r"justif\w*", r"explain\w* (?:\w+ ){0,2}?why\b",
    r"reason(?:ing)? (?:it )?(?:through|carefully|logically|step by step)\b",
    r"think(?:ing)? (?:it )?(?:through|carefully|logically|step by step)\b",
    r"show (?:your|the|all) (?:work|working|reasoning|steps)\b", r"walk me through\b",
    r"explain your (?:reasoning|answer)\b", r"your reasoning\b",
    r"expl[ií]ca\w* (?:\w+ ){0,2}?por ?qu[eé]\b", r"razon(?:a|ar|ad[oa]|amiento|e|en)\b",
    r"argument(?:a|ar|e|en|ando)\b",
    r"muestra (?:tu|el|los|todo) (?:trabajo|razonamiento|pasos|procedimiento)\b",
    r"piensa (?:con cuidado|bien|paso a paso)\b", r"explica tu (?:razonamiento|respuesta)\b",
    r"tu razonamiento\b")


def multi_step(scan: Scan) -> bool:
    if any_match(_MULTI_STEP, scan.low):
        return True
    first = primero = -_SEQUENCE_WINDOW - 1  # where the last opening cue ended
    for token in _SEQUENCE_TOKEN.finditer(scan.low):
        word = token.group()
        if word == "first":
            first = token.end()
        elif word == "primero":
            primero = token.end()
        elif token.start() - (first if word == "then" else primero) <= _SEQUENCE_WINDOW:
            return True
    return False


def reasoning_cue(scan: Scan) -> bool:
    return _REASONING_CUE.search(scan.low) is not None
