"""Counting and probability: letters in words, even numbers in a seeded range, and written
probability and counting questions."""

from __future__ import annotations

import random

from lkn.eval.build_set.answers import Prompt, number

WORDS_EN = ["banana", "strawberry", "elephant", "committee", "mississippi", "balloon", "letter", "coffee"]
WORDS_ES = ["banana", "ferrocarril", "paraguas", "cocodrilo", "mermelada", "calabaza", "arroz", "pelota"]
#: The letter asked about in each word.
LETTER_IN = {"banana": "a", "strawberry": "r", "elephant": "e", "committee": "t", "mississippi": "s",
             "balloon": "l", "letter": "t", "coffee": "f", "ferrocarril": "r", "paraguas": "a",
             "cocodrilo": "o", "mermelada": "e", "calabaza": "a", "arroz": "r", "pelota": "o"}

WRITTEN: list[Prompt] = [
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


def _letters() -> list[Prompt]:
    out: list[Prompt] = []
    for word in WORDS_EN:
        letter = LETTER_IN[word]
        out.append(("en", f"How many times does the letter '{letter}' appear in the word '{word}'?",
                    number(word.count(letter))))
    for word in WORDS_ES:
        letter = LETTER_IN[word]
        out.append(("es", f"¿Cuántas veces aparece la letra '{letter}' en la palabra '{word}'?",
                    number(word.count(letter))))
    return out


def _even_numbers(rng: random.Random) -> list[Prompt]:
    out: list[Prompt] = []
    for i in range(8):
        lo, hi = rng.randint(1, 10), rng.randint(20, 40)
        value = sum(1 for n in range(lo, hi + 1) if n % 2 == 0)
        if i % 2 == 0:
            out.append(("en", f"How many even numbers are there from {lo} to {hi}, both included?", number(value)))
        else:
            out.append(("es", f"¿Cuántos números pares hay del {lo} al {hi}, ambos incluidos?", number(value)))
    return out


def counting(rng: random.Random) -> list[Prompt]:
    return [*_letters(), *_even_numbers(rng), *WRITTEN]
