"""Arithmetic: seeded expressions, their values computed."""

from __future__ import annotations

import random

from lkn.eval.build_set.answers import Prompt, number


def arithmetic(rng: random.Random) -> list[Prompt]:
    out: list[Prompt] = []
    for i in range(64):
        lang = "en" if i % 2 == 0 else "es"
        kind = i % 8
        a, b, c = rng.randint(12, 99), rng.randint(3, 49), rng.randint(2, 9)
        if kind in (0, 1):
            expr, value = f"{a} + {b}", a + b
        elif kind in (2, 3):
            expr, value = f"{a} - {b}", a - b
        elif kind == 4:
            expr, value = f"{a} × {c}", a * c
        elif kind == 5:
            expr, value = f"{a * c} / {c}", a
        elif kind == 6:
            expr, value = f"({b} + {c}) × {c}", (b + c) * c
        else:
            expr, value = f"{a} + {b} - {c}", a + b - c
        if lang == "en":
            prompt = rng.choice([f"What is {expr}?", f"Calculate {expr}.", f"How much is {expr}?"])
        else:
            prompt = rng.choice([f"¿Cuánto es {expr}?", f"Calcula {expr}.", f"¿Cuál es el resultado de {expr}?"])
        out.append((lang, prompt, number(value)))
    return out
