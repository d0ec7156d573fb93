"""Unit conversion: seeded amounts over a table of units, both directions."""

from __future__ import annotations

import random

from lkn.eval.build_set.answers import Prompt, number

#: (bigger unit, smaller unit) in English, then in Spanish, and smaller units per bigger one.
UNITS = [
    ("kilometres", "metres", "kilómetros", "metros", 1000),
    ("metres", "centimetres", "metros", "centímetros", 100),
    ("hours", "minutes", "horas", "minutos", 60),
    ("minutes", "seconds", "minutos", "segundos", 60),
    ("kilograms", "grams", "kilogramos", "gramos", 1000),
    ("litres", "millilitres", "litros", "mililitros", 1000),
    ("days", "hours", "días", "horas", 24),
    ("weeks", "days", "semanas", "días", 7),
    ("feet", "inches", "pies", "pulgadas", 12),
    ("dozens", "units", "docenas", "unidades", 12),
    ("centimetres", "millimetres", "centímetros", "milímetros", 10),
    ("years", "months", "años", "meses", 12),
]


def conversions(rng: random.Random) -> list[Prompt]:
    out: list[Prompt] = []
    for i in range(56):
        lang = "en" if i % 2 == 0 else "es"
        big_en, small_en, big_es, small_es, factor = UNITS[(i // 2) % len(UNITS)]
        amount = rng.randint(2, 9)
        if i % 5 == 4:
            prompt = (f"How many {big_en} are {amount * factor} {small_en}?" if lang == "en"
                      else f"¿Cuántos {big_es} son {amount * factor} {small_es}?")
            out.append((lang, prompt, number(amount)))
        else:
            prompt = (f"How many {small_en} are in {amount} {big_en}?" if lang == "en"
                      else f"¿Cuántos {small_es} hay en {amount} {big_es}?")
            out.append((lang, prompt, number(amount * factor)))
    return out
