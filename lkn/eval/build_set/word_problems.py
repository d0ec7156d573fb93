"""Word problems: seeded quantities in seven everyday stories, their answers computed."""

from __future__ import annotations

import random
from collections.abc import Callable

from lkn.eval.build_set.answers import Prompt, number

NAMES_EN = ["Tom", "Anna", "Sam", "Lucy", "Ben", "Maya"]
NAMES_ES = ["Lucía", "Pedro", "Marta", "Diego", "Sofía", "Juan"]

#: A story: (the answer, the English prompt, the Spanish prompt) for a name.
Story = Callable[[random.Random, str], tuple[float, str, str]]


def _apples(rng: random.Random, name: str) -> tuple[float, str, str]:
    a, b = rng.randint(10, 40), rng.randint(2, 9)
    return (a - b,
            f"{name} has {a} apples and gives away {b}. How many apples does {name} have left?",
            f"{name} tiene {a} manzanas y regala {b}. ¿Cuántas manzanas le quedan?")


def _car(rng: random.Random, name: str) -> tuple[float, str, str]:
    speed, hours = rng.randint(3, 9) * 10, rng.randint(2, 5)
    return (speed * hours,
            f"A car drives at {speed} km per hour for {hours} hours. How many kilometres does it travel?",
            f"Un coche va a {speed} km por hora durante {hours} horas. ¿Cuántos kilómetros recorre?")


def _change(rng: random.Random, name: str) -> tuple[float, str, str]:
    price, count = rng.randint(2, 9), rng.randint(3, 8)
    paid = (price * count // 10 + 1) * 10
    return (paid - price * count,
            f"{name} buys {count} notebooks at {price} dollars each and pays with {paid} dollars. How much change does {name} get, in dollars?",
            f"{name} compra {count} cuadernos a {price} euros cada uno y paga con {paid} euros. ¿Cuánto le devuelven, en euros?")


def _pencils(rng: random.Random, name: str) -> tuple[float, str, str]:
    boxes, per = rng.randint(3, 9), rng.randint(4, 12)
    return (boxes * per,
            f"There are {boxes} boxes with {per} pencils in each box. How many pencils are there in total?",
            f"Hay {boxes} cajas con {per} lápices en cada caja. ¿Cuántos lápices hay en total?")


def _savings(rng: random.Random, name: str) -> tuple[float, str, str]:
    per_day, days, used = rng.randint(2, 6), rng.randint(5, 10), rng.randint(1, 9)
    return (per_day * days - used,
            f"{name} saves {per_day} dollars a day for {days} days, then spends {used} dollars. How many dollars does {name} have now?",
            f"{name} ahorra {per_day} euros al día durante {days} días y luego gasta {used} euros. ¿Cuántos euros tiene ahora?")


def _pizza(rng: random.Random, name: str) -> tuple[float, str, str]:
    people, slices = rng.randint(2, 6), rng.randint(2, 4)
    pizzas = rng.randint(2, 5)
    return (pizzas * 8 - people * slices,
            f"{pizzas} pizzas are cut into 8 slices each. {people} friends eat {slices} slices each. How many slices are left?",
            f"{pizzas} pizzas se cortan en 8 porciones cada una. {people} amigos comen {slices} porciones cada uno. ¿Cuántas porciones sobran?")


def _train(rng: random.Random, name: str) -> tuple[float, str, str]:
    start, minutes = rng.randint(1, 10), rng.choice([30, 60, 90, 120, 150, 180])
    end_min = start * 60 + minutes
    arrival = end_min // 60 + end_min % 60 / 60
    return (arrival,
            f"A train leaves at {start}:00 and the trip takes {minutes} minutes. At what hour does it arrive? Give the hour as a number (use .5 for half past).",
            f"Un tren sale a las {start}:00 y el viaje dura {minutes} minutos. ¿A qué hora llega? Da la hora como número (usa ,5 para y media).")


STORIES: list[Story] = [_apples, _car, _change, _pencils, _savings, _pizza, _train]


def word_problems(rng: random.Random) -> list[Prompt]:
    out: list[Prompt] = []
    for i in range(56):
        lang = "en" if i % 2 == 0 else "es"
        name = rng.choice(NAMES_EN if lang == "en" else NAMES_ES)
        value, english, spanish = STORIES[(i // 2) % len(STORIES)](rng, name)
        out.append((lang, english if lang == "en" else spanish, number(value)))
    return out
