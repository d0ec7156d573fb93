"""Answer specs (see :mod:`lkn.eval.grader`) and the shape every item family yields."""

from __future__ import annotations

from typing import Any

#: One prompt of a family: its language (``en``/``es``), its text and its answer spec.
Prompt = tuple[str, str, dict[str, Any]]


def number(value: float, tolerance: float = 0.0, probability: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "number", "value": value}
    if tolerance:
        spec["tolerance"] = tolerance
    if probability:
        spec["probability"] = True
    return spec


def text(*aliases: str) -> dict[str, Any]:
    return {"type": "text", "aliases": list(aliases)}


def choice(right: list[str], wrong: list[str]) -> dict[str, Any]:
    return {"type": "choice", "aliases": right, "wrong": wrong}


def open_(*topic: str, min_words: int = 5) -> dict[str, Any]:
    # "Not truncated" needs room: open answers get a larger token budget than the default.
    return {"type": "open", "topic": list(topic), "min_words": min_words, "max_tokens": 160}
