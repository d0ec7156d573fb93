"""Writes the bundled evaluation set, ``lkn/eval/data/items.jsonl`` (``python -m lkn.eval.build_set``).

The set was written for this project: templated items (arithmetic, word problems, unit
conversion, counting and probability) come from a seeded generator so their answers are
computed, not typed; facts, code reading, logic and chat prompts are written out below.
Every item has an id, a category, a language (``en``/``es``), a prompt and an answer spec
(see :mod:`lkn.eval.grader`). Items with ``quick`` true form the ``--quick`` subset.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

Item = dict[str, Any]
OUT = Path(__file__).with_name("data") / "items.jsonl"


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


def arithmetic(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
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


def word_problems(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    names_en = ["Tom", "Anna", "Sam", "Lucy", "Ben", "Maya"]
    names_es = ["Lucía", "Pedro", "Marta", "Diego", "Sofía", "Juan"]
    for i in range(56):
        lang = "en" if i % 2 == 0 else "es"
        name = rng.choice(names_en if lang == "en" else names_es)
        kind = (i // 2) % 7
        if kind == 0:
            a, b = rng.randint(10, 40), rng.randint(2, 9)
            value = a - b
            p = (f"{name} has {a} apples and gives away {b}. How many apples does {name} have left?"
                 if lang == "en" else
                 f"{name} tiene {a} manzanas y regala {b}. ¿Cuántas manzanas le quedan?")
        elif kind == 1:
            speed, hours = rng.randint(3, 9) * 10, rng.randint(2, 5)
            value = speed * hours
            p = (f"A car drives at {speed} km per hour for {hours} hours. How many kilometres does it travel?"
                 if lang == "en" else
                 f"Un coche va a {speed} km por hora durante {hours} horas. ¿Cuántos kilómetros recorre?")
        elif kind == 2:
            price, count = rng.randint(2, 9), rng.randint(3, 8)
            paid = (price * count // 10 + 1) * 10
            value = paid - price * count
            p = (f"{name} buys {count} notebooks at {price} dollars each and pays with {paid} dollars. How much change does {name} get, in dollars?"
                 if lang == "en" else
                 f"{name} compra {count} cuadernos a {price} euros cada uno y paga con {paid} euros. ¿Cuánto le devuelven, en euros?")
        elif kind == 3:
            boxes, per = rng.randint(3, 9), rng.randint(4, 12)
            value = boxes * per
            p = (f"There are {boxes} boxes with {per} pencils in each box. How many pencils are there in total?"
                 if lang == "en" else
                 f"Hay {boxes} cajas con {per} lápices en cada caja. ¿Cuántos lápices hay en total?")
        elif kind == 4:
            per_day, days, used = rng.randint(2, 6), rng.randint(5, 10), rng.randint(1, 9)
            value = per_day * days - used
            p = (f"{name} saves {per_day} dollars a day for {days} days, then spends {used} dollars. How many dollars does {name} have now?"
                 if lang == "en" else
                 f"{name} ahorra {per_day} euros al día durante {days} días y luego gasta {used} euros. ¿Cuántos euros tiene ahora?")
        elif kind == 5:
            people, slices = rng.randint(2, 6), rng.randint(2, 4)
            pizzas = rng.randint(2, 5)
            total = pizzas * 8
            value = total - people * slices
            p = (f"{pizzas} pizzas are cut into 8 slices each. {people} friends eat {slices} slices each. How many slices are left?"
                 if lang == "en" else
                 f"{pizzas} pizzas se cortan en 8 porciones cada una. {people} amigos comen {slices} porciones cada uno. ¿Cuántas porciones sobran?")
        else:
            start, minutes = rng.randint(1, 10), rng.choice([30, 60, 90, 120, 150, 180])
            end_min = start * 60 + minutes
            extra = end_min % 60
            arrival = end_min // 60 + extra / 60
            p = (f"A train leaves at {start}:00 and the trip takes {minutes} minutes. At what hour does it arrive? Give the hour as a number (use .5 for half past)."
                 if lang == "en" else
                 f"Un tren sale a las {start}:00 y el viaje dura {minutes} minutos. ¿A qué hora llega? Da la hora como número (usa ,5 para y media).")
            out.append((lang, p, number(arrival)))
            continue
        out.append((lang, p, number(value)))
    return out


def conversions(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    units = [
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
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(56):
        lang = "en" if i % 2 == 0 else "es"
        big_en, small_en, big_es, small_es, factor = units[(i // 2) % len(units)]
        amount = rng.randint(2, 9)
        if i % 5 == 4:
            p = (f"How many {big_en} are {amount * factor} {small_en}?" if lang == "en"
                 else f"¿Cuántos {big_es} son {amount * factor} {small_es}?")
            out.append((lang, p, number(amount)))
        else:
            p = (f"How many {small_en} are in {amount} {big_en}?" if lang == "en"
                 else f"¿Cuántos {small_es} hay en {amount} {big_es}?")
            out.append((lang, p, number(amount * factor)))
    return out


def counting(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    words_en = ["banana", "strawberry", "elephant", "committee", "mississippi", "balloon", "letter", "coffee"]
    words_es = ["banana", "ferrocarril", "paraguas", "cocodrilo", "mermelada", "calabaza", "arroz", "pelota"]
    letters = {"banana": "a", "strawberry": "r", "elephant": "e", "committee": "t", "mississippi": "s",
               "balloon": "l", "letter": "t", "coffee": "f", "ferrocarril": "r", "paraguas": "a",
               "cocodrilo": "o", "mermelada": "e", "calabaza": "a", "arroz": "r", "pelota": "o"}
    for w in words_en:
        ch = letters[w]
        out.append(("en", f"How many times does the letter '{ch}' appear in the word '{w}'?", number(w.count(ch))))
    for w in words_es:
        ch = letters[w]
        out.append(("es", f"¿Cuántas veces aparece la letra '{ch}' en la palabra '{w}'?", number(w.count(ch))))
    for i in range(8):
        lo, hi = rng.randint(1, 10), rng.randint(20, 40)
        value = sum(1 for n in range(lo, hi + 1) if n % 2 == 0)
        if i % 2 == 0:
            out.append(("en", f"How many even numbers are there from {lo} to {hi}, both included?", number(value)))
        else:
            out.append(("es", f"¿Cuántos números pares hay del {lo} al {hi}, ambos incluidos?", number(value)))
    fixed = [
        ("en", "A fair six-sided die is rolled once. What is the probability of getting a 6?", number(1 / 6, 0.005, True)),
        ("es", "Se lanza una vez un dado justo de seis caras. ¿Cuál es la probabilidad de sacar un 6?", number(1 / 6, 0.005, True)),
        ("en", "A fair coin is tossed twice. What is the probability of getting two heads?", number(0.25, 0.001, True)),
        ("es", "Se lanza dos veces una moneda justa. ¿Cuál es la probabilidad de sacar dos caras?", number(0.25, 0.001, True)),
        ("en", "A fair coin is tossed once. What is the probability of tails?", number(0.5, 0.001, True)),
        ("es", "Se lanza una moneda justa una vez. ¿Cuál es la probabilidad de que salga cruz?", number(0.5, 0.001, True)),
        ("en", "A bag has 3 red balls and 1 blue ball. One ball is drawn at random. What is the probability that it is red?", number(0.75, 0.001, True)),
        ("es", "Una bolsa tiene 3 bolas rojas y 1 azul. Se saca una bola al azar. ¿Cuál es la probabilidad de que sea roja?", number(0.75, 0.001, True)),
        ("en", "A bag has 2 green marbles and 8 yellow marbles. What is the probability of drawing a green one?", number(0.2, 0.001, True)),
        ("es", "Una bolsa tiene 2 canicas verdes y 8 amarillas. ¿Cuál es la probabilidad de sacar una verde?", number(0.2, 0.001, True)),
        ("en", "A fair die is rolled. What is the probability of an even number?", number(0.5, 0.001, True)),
        ("es", "Se lanza un dado justo. ¿Cuál es la probabilidad de sacar un número par?", number(0.5, 0.001, True)),
        ("en", "In how many different orders can 3 different books be placed on a shelf?", number(6)),
        ("es", "¿De cuántas maneras distintas se pueden ordenar 3 libros diferentes en una estantería?", number(6)),
        ("en", "In how many different orders can 4 people stand in a line?", number(24)),
        ("es", "¿De cuántas formas distintas pueden ponerse 4 personas en fila?", number(24)),
        ("en", "How many different outcomes are there when two coins are tossed?", number(4)),
        ("es", "¿Cuántos resultados distintos hay al lanzar dos monedas?", number(4)),
        ("en", "How many sides do 3 triangles have in total?", number(9)),
        ("es", "¿Cuántos lados tienen 3 triángulos en total?", number(9)),
        ("en", "How many legs do 4 dogs have in total?", number(16)),
        ("es", "¿Cuántas patas tienen 4 perros en total?", number(16)),
        ("en", "How many days are there in a week and a half? Answer with a number.", number(10.5)),
        ("es", "¿Cuántos días hay en una semana y media? Responde con un número.", number(10.5)),
        ("en", "How many handshakes happen if 3 people each shake hands once with every other person?", number(3)),
        ("es", "¿Cuántos apretones de manos hay si 3 personas se saludan una vez cada una con todas las demás?", number(3)),
        ("en", "How many vowels are in the word 'education'?", number(5)),
        ("es", "¿Cuántas vocales tiene la palabra 'murciélago'?", number(5)),
        ("en", "How many months of the year have 31 days?", number(7)),
        ("es", "¿Cuántos meses del año tienen 31 días?", number(7)),
        ("en", "A card is drawn from a standard 52-card deck. What is the probability that it is a heart?", number(0.25, 0.001, True)),
        ("es", "Se saca una carta de una baraja francesa de 52 cartas. ¿Cuál es la probabilidad de que sea de corazones?", number(0.25, 0.001, True)),
        ("en", "How many two-digit numbers are there (from 10 to 99)?", number(90)),
        ("es", "¿Cuántos números de dos cifras hay (del 10 al 99)?", number(90)),
    ]
    out.extend(fixed)
    return out


CAPITALS = [
    ("France", "Francia", ["Paris", "París"]), ("Spain", "España", ["Madrid"]),
    ("Italy", "Italia", ["Rome", "Roma"]), ("Germany", "Alemania", ["Berlin", "Berlín"]),
    ("Portugal", "Portugal", ["Lisbon", "Lisboa"]), ("Japan", "Japón", ["Tokyo", "Tokio"]),
    ("Canada", "Canadá", ["Ottawa"]), ("Australia", "Australia", ["Canberra"]),
    ("Mexico", "México", ["Mexico City", "Ciudad de México", "CDMX", "México D.F.", "Mexico, D.F."]),
    ("Argentina", "Argentina", ["Buenos Aires"]), ("Peru", "Perú", ["Lima"]),
    ("Chile", "Chile", ["Santiago"]), ("Colombia", "Colombia", ["Bogotá", "Bogota"]),
    ("Egypt", "Egipto", ["Cairo", "El Cairo"]), ("Russia", "Rusia", ["Moscow", "Moscú"]),
    ("China", "China", ["Beijing", "Pekín", "Peking"]), ("India", "India", ["New Delhi", "Nueva Delhi", "Delhi"]),
    ("Brazil", "Brasil", ["Brasília", "Brasilia"]), ("Greece", "Grecia", ["Athens", "Atenas"]),
    ("Norway", "Noruega", ["Oslo"]), ("Sweden", "Suecia", ["Stockholm", "Estocolmo"]),
    ("Poland", "Polonia", ["Warsaw", "Varsovia"]), ("Ireland", "Irlanda", ["Dublin", "Dublín"]),
    ("Kenya", "Kenia", ["Nairobi"]), ("Cuba", "Cuba", ["Havana", "La Habana"]),
    ("Venezuela", "Venezuela", ["Caracas"]), ("Austria", "Austria", ["Vienna", "Viena"]),
    ("Turkey", "Turquía", ["Ankara"]), ("South Korea", "Corea del Sur", ["Seoul", "Seúl"]),
    ("Netherlands", "Países Bajos", ["Amsterdam", "Ámsterdam"]),
]

FACTS = [
    ("en", "How many planets are in the Solar System?", number(8)),
    ("es", "¿Cuántos planetas hay en el sistema solar?", number(8)),
    ("en", "What is the chemical symbol for gold?", text("Au")),
    ("es", "¿Cuál es el símbolo químico del oro?", text("Au")),
    ("en", "What is the chemical formula of water?", text("H2O", "H₂O")),
    ("es", "¿Cuál es la fórmula química del agua?", text("H2O", "H₂O")),
    ("en", "Which planet is known as the Red Planet?", text("Mars")),
    ("es", "¿Qué planeta es conocido como el planeta rojo?", text("Marte")),
    ("en", "Who wrote 'Don Quixote'?", text("Cervantes")),
    ("es", "¿Quién escribió 'Don Quijote de la Mancha'?", text("Cervantes")),
    ("en", "Who wrote 'Romeo and Juliet'?", text("Shakespeare")),
    ("es", "¿Quién escribió 'Romeo y Julieta'?", text("Shakespeare")),
    ("en", "What is the largest ocean on Earth?", text("Pacific")),
    ("es", "¿Cuál es el océano más grande de la Tierra?", text("Pacífico", "Pacifico")),
    ("en", "How many continents are there (in the usual seven-continent model)?", number(7)),
    ("es", "¿Cuántos continentes hay según el modelo habitual de siete continentes?", number(7)),
    ("en", "At what temperature in degrees Celsius does water boil at sea level?", number(100)),
    ("es", "¿A cuántos grados Celsius hierve el agua al nivel del mar?", number(100)),
    ("en", "At what temperature in degrees Celsius does water freeze?", number(0)),
    ("es", "¿A cuántos grados Celsius se congela el agua?", number(0)),
    ("en", "How many legs does a spider have?", number(8)),
    ("es", "¿Cuántas patas tiene una araña?", number(8)),
    ("en", "What gas do plants absorb from the air for photosynthesis?", text("carbon dioxide", "CO2", "CO₂")),
    ("es", "¿Qué gas absorben las plantas del aire para la fotosíntesis?", text("dióxido de carbono", "CO2", "CO₂", "anhídrido carbónico")),
    ("en", "What is the largest planet in the Solar System?", text("Jupiter")),
    ("es", "¿Cuál es el planeta más grande del sistema solar?", text("Júpiter", "Jupiter")),
    ("en", "In which year did humans first land on the Moon?", number(1969)),
    ("es", "¿En qué año llegó el ser humano a la Luna por primera vez?", number(1969)),
    ("en", "What is the hardest natural material?", text("diamond")),
    ("es", "¿Cuál es el material natural más duro?", text("diamante")),
    ("en", "How many days are there in a leap year?", number(366)),
    ("es", "¿Cuántos días tiene un año bisiesto?", number(366)),
    ("en", "What language is mainly spoken in Brazil?", text("Portuguese")),
    ("es", "¿Qué idioma se habla principalmente en Brasil?", text("portugués", "portugues")),
    ("en", "Who painted the Mona Lisa?", text("Leonardo", "da Vinci")),
    ("es", "¿Quién pintó la Mona Lisa?", text("Leonardo", "da Vinci")),
    ("en", "What is the smallest prime number?", number(2)),
    ("es", "¿Cuál es el número primo más pequeño?", number(2)),
    ("en", "How many sides does a hexagon have?", number(6)),
    ("es", "¿Cuántos lados tiene un hexágono?", number(6)),
]

CODE: list[tuple[str, int | str]] = [
    ("print(2 + 3 * 4)", 14), ("print(10 // 3)", 3), ("print(10 % 4)", 2), ("print(2 ** 5)", 32),
    ("x = 5\nx += 3\nprint(x)", 8), ("print(len('hello'))", 5), ("print(len([1, 2, 3, 4]))", 4),
    ("a = [3, 1, 2]\nprint(max(a))", 3), ("print(sum([1, 2, 3, 4, 5]))", 15),
    ("total = 0\nfor i in range(4):\n    total += i\nprint(total)", 6),
    ("n = 0\nwhile n < 7:\n    n += 2\nprint(n)", 8), ("print(abs(-9))", 9),
    ("def f(x):\n    return x * 2\nprint(f(21))", 42), ("print(int('12') + 3)", 15),
    ("s = 'abc'\nprint(s[1])", "b"), ("print('ab' * 3)", "ababab"), ("print('Hola'.upper())", "HOLA"),
    ("print('python'[0:3])", "pyt"), ("print(min(7, 3, 9))", 3), ("x = [1, 2, 3]\nx.append(4)\nprint(len(x))", 4),
    ("print(round(3.7))", 4), ("print(7 > 3)", "True"), ("print(3 == 4)", "False"),
    ("d = {'a': 1, 'b': 2}\nprint(d['b'])", 2), ("print(len(range(10)))", 10),
    ("x = 10\nif x > 5:\n    print('big')\nelse:\n    print('small')", "big"),
    ("print(sorted([3, 1, 2])[0])", 1), ("count = 0\nfor c in 'banana':\n    if c == 'a':\n        count += 1\nprint(count)", 3),
    ("print(100 - 7 * 3)", 79), ("print(list(range(3))[-1])", 2),
    ("def g(a, b=4):\n    return a + b\nprint(g(1))", 5), ("print(' '.join(['a', 'b']))", "a b"),
]

LOGIC = [
    ("en", "All cats are animals. Tom is a cat. Is Tom an animal? Answer yes or no.", choice(["yes"], ["no"])),
    ("es", "Todos los gatos son animales. Tom es un gato. ¿Es Tom un animal? Responde sí o no.", choice(["sí", "si"], ["no"])),
    ("en", "All birds have feathers. A dog is not a bird. Must a dog have feathers? Answer yes or no.", choice(["no"], ["yes"])),
    ("es", "Todas las aves tienen plumas. Un perro no es un ave. ¿Tiene que tener plumas un perro? Responde sí o no.", choice(["no"], ["sí", "si"])),
    ("en", "If it rains, the street gets wet. It is raining. Is the street wet? Answer yes or no.", choice(["yes"], ["no"])),
    ("es", "Si llueve, la calle se moja. Está lloviendo. ¿Está mojada la calle? Responde sí o no.", choice(["sí", "si"], ["no"])),
    ("en", "Is 17 a prime number? Answer yes or no.", choice(["yes"], ["no"])),
    ("es", "¿Es 17 un número primo? Responde sí o no.", choice(["sí", "si"], ["no"])),
    ("en", "Is 21 an even number? Answer yes or no.", choice(["no"], ["yes"])),
    ("es", "¿Es 21 un número par? Responde sí o no.", choice(["no"], ["sí", "si"])),
    ("en", "Is 9 greater than 12? Answer yes or no.", choice(["no"], ["yes"])),
    ("es", "¿Es 9 mayor que 12? Responde sí o no.", choice(["no"], ["sí", "si"])),
    ("en", "Anna is taller than Ben. Ben is taller than Carl. Who is the tallest: Anna, Ben or Carl?", choice(["Anna"], ["Ben", "Carl"])),
    ("es", "Ana es más alta que Bea. Bea es más alta que Carla. ¿Quién es la más alta: Ana, Bea o Carla?", choice(["Ana"], ["Bea", "Carla"])),
    ("en", "Mia is older than Leo. Leo is older than Zoe. Who is the youngest: Mia, Leo or Zoe?", choice(["Zoe"], ["Mia", "Leo"])),
    ("es", "Luis es mayor que Raúl. Raúl es mayor que Iván. ¿Quién es el más joven: Luis, Raúl o Iván?", choice(["Iván", "Ivan"], ["Luis", "Raúl", "Raul"])),
    ("en", "What comes next in the sequence 2, 4, 6, 8, ...?", number(10)),
    ("es", "¿Qué número sigue en la secuencia 2, 4, 6, 8, ...?", number(10)),
    ("en", "What comes next in the sequence 5, 10, 15, 20, ...?", number(25)),
    ("es", "¿Qué número sigue en la secuencia 5, 10, 15, 20, ...?", number(25)),
    ("en", "What comes next in the sequence 1, 2, 4, 8, ...?", number(16)),
    ("es", "¿Qué número sigue en la secuencia 1, 2, 4, 8, ...?", number(16)),
    ("en", "What comes next in the sequence 3, 6, 9, 12, ...?", number(15)),
    ("es", "¿Qué número sigue en la secuencia 3, 6, 9, 12, ...?", number(15)),
    ("en", "What comes next in the sequence 10, 9, 8, 7, ...?", number(6)),
    ("es", "¿Qué número sigue en la secuencia 10, 9, 8, 7, ...?", number(6)),
    ("en", "What comes next in the sequence 1, 4, 9, 16, ...?", number(25)),
    ("es", "¿Qué número sigue en la secuencia 1, 4, 9, 16, ...?", number(25)),
    ("en", "If today is Monday, what day is it tomorrow?", choice(["Tuesday"], ["Monday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])),
    ("es", "Si hoy es lunes, ¿qué día es mañana?", choice(["martes"], ["lunes", "miércoles", "miercoles", "jueves", "viernes", "sábado", "sabado", "domingo"])),
    ("en", "If today is Friday, what day was it yesterday?", choice(["Thursday"], ["Monday", "Tuesday", "Wednesday", "Friday", "Saturday", "Sunday"])),
    ("es", "Si hoy es viernes, ¿qué día fue ayer?", choice(["jueves"], ["lunes", "martes", "miércoles", "miercoles", "viernes", "sábado", "sabado", "domingo"])),
    ("en", "A box is heavier than a ball. The ball is heavier than a feather. Is the feather heavier than the box? Answer yes or no.", choice(["no"], ["yes"])),
    ("es", "Una caja pesa más que una pelota. La pelota pesa más que una pluma. ¿Pesa la pluma más que la caja? Responde sí o no.", choice(["no"], ["sí", "si"])),
    ("en", "Which is larger: 0.5 or 0.25?", number(0.5)),
    ("es", "¿Qué número es mayor: 0,5 o 0,25?", number(0.5)),
    ("en", "Which is smaller: 3/4 or 1/2? Answer with the fraction.", choice(["1/2", "0.5", "one half"], ["3/4", "0.75"])),
    ("es", "¿Qué es menor: 3/4 o 1/2? Responde con la fracción.", choice(["1/2", "0,5", "un medio"], ["3/4", "0,75"])),
    ("en", "If all roses are flowers and some flowers are red, is every rose necessarily red? Answer yes or no.", choice(["no"], ["yes"])),
    ("es", "Si todas las rosas son flores y algunas flores son rojas, ¿es necesariamente roja toda rosa? Responde sí o no.", choice(["no"], ["sí", "si"])),
    ("en", "What is the opposite of 'hot'?", choice(["cold"], ["hot", "warm"])),
    ("es", "¿Cuál es el contrario de 'caliente'?", choice(["frío", "frio"], ["caliente", "tibio"])),
    ("en", "Which month comes after March?", choice(["April"], ["March", "May", "February", "June"])),
    ("es", "¿Qué mes viene después de marzo?", choice(["abril"], ["marzo", "mayo", "febrero", "junio"])),
]

CHAT = [
    ("en", "Give me three tips for sleeping better.", ["sleep", "bed", "night", "rest"]),
    ("es", "Dame tres consejos para dormir mejor.", ["dormir", "sueño", "cama", "noche", "descans"]),
    ("en", "Write a short poem about the sea.", ["sea", "ocean", "wave", "water", "shore"]),
    ("es", "Escribe un poema corto sobre el mar.", ["mar", "ola", "agua", "océano", "oceano", "playa"]),
    ("en", "What should I pack for a weekend camping trip?", ["tent", "sleeping", "water", "food", "camp"]),
    ("es", "¿Qué debo llevar para un fin de semana de acampada?", ["tienda", "saco", "agua", "comida", "acampa"]),
    ("en", "Suggest a name for a friendly orange cat.", ["cat", "name", "orange", "ginger"]),
    ("es", "Sugiere un nombre para un gato naranja y simpático.", ["gato", "nombre", "naranja"]),
    ("en", "Describe a sunny day at the beach in two sentences.", ["sun", "beach", "sand", "sea", "wave"]),
    ("es", "Describe en dos frases un día soleado en la playa.", ["sol", "playa", "arena", "mar", "ola"]),
    ("en", "How can I make my mornings less stressful?", ["morning", "stress", "plan", "sleep", "time"]),
    ("es", "¿Cómo puedo hacer que mis mañanas sean menos estresantes?", ["mañana", "estrés", "estres", "tiempo", "dormir", "plan"]),
    ("en", "Tell me a fun fact about dolphins.", ["dolphin"]),
    ("es", "Cuéntame un dato curioso sobre los delfines.", ["delf"]),
    ("en", "What are some good habits for staying healthy?", ["health", "exercise", "water", "sleep", "eat", "diet"]),
    ("es", "¿Cuáles son algunos buenos hábitos para mantenerse sano?", ["salud", "sano", "ejercicio", "agua", "dormir", "comer", "dieta"]),
    ("en", "Write a friendly message inviting a friend to dinner.", ["dinner", "invite", "friend", "join"]),
    ("es", "Escribe un mensaje amable invitando a un amigo a cenar.", ["cena", "cenar", "invit", "amig"]),
    ("en", "Why do people like gardening?", ["garden", "plant", "flower", "grow", "nature"]),
    ("es", "¿Por qué a la gente le gusta la jardinería?", ["jard", "planta", "flor", "naturaleza", "cultiv"]),
    ("en", "Recommend a hobby for someone who likes being outdoors.", ["hik", "outdoor", "walk", "garden", "cycl", "camp", "fish", "hobby"]),
    ("es", "Recomienda un pasatiempo para alguien a quien le gusta estar al aire libre.", ["senderismo", "aire libre", "caminar", "jardin", "bici", "acampar", "pesca", "pasatiempo"]),
    ("en", "What is a good way to learn a new language?", ["language", "practice", "speak", "learn", "word"]),
    ("es", "¿Cuál es una buena forma de aprender un idioma nuevo?", ["idioma", "practic", "hablar", "aprend", "palabra"]),
    ("en", "Write two sentences about autumn.", ["autumn", "fall", "leaves", "leaf", "cool"]),
    ("es", "Escribe dos frases sobre el otoño.", ["otoño", "otono", "hojas", "hoja", "fresco"]),
    ("en", "How do I make a cup of tea?", ["tea", "water", "boil", "cup"]),
    ("es", "¿Cómo se prepara una taza de té?", ["té", "agua", "hervir", "taza"]),
    ("en", "Give me an idea for a birthday present for my mother.", ["gift", "present", "mother", "mom", "birthday"]),
    ("es", "Dame una idea de regalo de cumpleaños para mi madre.", ["regalo", "madre", "mamá", "cumpleaños"]),
    ("en", "What can I cook with rice and eggs?", ["rice", "egg", "fried", "cook"]),
    ("es", "¿Qué puedo cocinar con arroz y huevos?", ["arroz", "huevo", "frito", "cocin"]),
    ("en", "Say something encouraging to a student before an exam.", ["exam", "luck", "you", "study", "best"]),
    ("es", "Dile algo alentador a un estudiante antes de un examen.", ["examen", "suerte", "estudi", "puedes", "confía", "confia"]),
    ("en", "Describe your ideal weekend.", ["weekend", "relax", "friend", "day"]),
    ("es", "Describe tu fin de semana ideal.", ["fin de semana", "relaj", "amig", "día", "dia"]),
    ("en", "What are the benefits of reading books?", ["read", "book", "knowledge", "imagin"]),
    ("es", "¿Cuáles son los beneficios de leer libros?", ["leer", "libro", "conocimiento", "imagina", "lectura"]),
    ("en", "Tell me a short story about a brave mouse.", ["mouse", "brave"]),
    ("es", "Cuéntame una historia corta sobre un ratón valiente.", ["ratón", "raton", "valiente"]),
    ("en", "How can I stay motivated when working from home?", ["work", "home", "motivat", "routine", "break"]),
    ("es", "¿Cómo puedo mantenerme motivado trabajando desde casa?", ["trabaj", "casa", "motiva", "rutina", "descanso"]),
    ("en", "What makes a good friend?", ["friend", "trust", "listen", "honest", "support"]),
    ("es", "¿Qué hace que alguien sea un buen amigo?", ["amig", "confianza", "escuch", "honest", "apoy"]),
]


def build() -> list[Item]:
    rng = random.Random(20261201)
    items: list[Item] = []

    def add(category: str, lang: str, prompt: str, answer: dict[str, Any]) -> None:
        index = sum(1 for it in items if it["category"] == category)
        items.append({"id": f"{category}-{index + 1:03d}", "category": category, "lang": lang,
                      "prompt": prompt, "answer": answer})

    for lang, p, a in arithmetic(rng):
        add("arithmetic", lang, p, a)
    for lang, p, a in word_problems(rng):
        add("word_problems", lang, p, a)
    for lang, p, a in conversions(rng):
        add("unit_conversion", lang, p, a)
    for lang, p, a in counting(rng):
        add("counting_probability", lang, p, a)
    for en, es, aliases in CAPITALS:
        add("facts_capitals", "en", f"What is the capital of {en}?", text(*aliases))
        add("facts_capitals", "es", f"¿Cuál es la capital de {es}?", text(*aliases))
    for lang, p, a in FACTS:
        add("facts_capitals", lang, p, a)
    for index, (code, result) in enumerate(CODE):
        answer = text(result) if isinstance(result, str) else number(result)
        if index % 2 == 0:
            add("code_reading", "en", f"What does this Python code print?\n\n{code}", answer)
        else:
            add("code_reading", "es", f"¿Qué imprime este código Python?\n\n{code}", answer)
    for lang, p, a in LOGIC:
        add("logic", lang, p, a)
    for lang, p, topic in CHAT:
        add("chat", lang, p, open_(*topic))
    # The quick subset: every eighth item of each category (both languages alternate).
    seen: dict[str, int] = {}
    for item in items:
        n = seen.get(item["category"], 0)
        seen[item["category"]] = n + 1
        item["quick"] = n % 8 == 0
    return items


def main() -> None:
    items = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} items to {OUT}")


if __name__ == "__main__":
    main()
