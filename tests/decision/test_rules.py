"""The rules strategy on realistic English and Spanish prompts, and what it reads."""

from __future__ import annotations

import time

import pytest

from lkn.decision import rules
from lkn.values import risk_signals
from lkn.values import GenerateRequest, JSONObject, Mode, Route

pytestmark = pytest.mark.fast

F, A = Mode.FLUIDO, Mode.ANALITICO

_STORY = (
    "Last summer my family and I rented a small house near the coast for two weeks. The house "
    "had a garden with lemon trees, a view of the harbour and a kitchen that was much too small "
    "for six people. Every morning my father walked to the bakery in the village, and every "
    "evening we ate outside until the mosquitoes chased us indoors. My sister learnt to sail, "
    "my brother read all of the books on the shelf, and I mostly slept in a hammock. On the "
    "last day it rained for hours, the power went out, and we played cards by candlelight. "
    "Nobody wanted to go home, and we still talk about that holiday at every family dinner. "
)
_HISTORIA = (
    "El verano pasado alquilamos una casa pequeña cerca de la costa durante dos semanas. La casa "
    "tenía un jardín con limoneros, vistas al puerto y una cocina demasiado pequeña para seis "
    "personas. Cada mañana mi padre iba andando a la panadería del pueblo y cada noche cenábamos "
    "fuera hasta que los mosquitos nos obligaban a entrar. Mi hermana aprendió a navegar, mi "
    "hermano leyó todos los libros de la estantería y yo casi siempre dormía en una hamaca. El "
    "último día llovió durante horas, se fue la luz y jugamos a las cartas a la luz de las velas. "
    "Nadie quería volver a casa y todavía hablamos de aquellas vacaciones en cada cena familiar. "
)

CASES: list[tuple[str, Mode, str | None]] = [
    # ---- FLUIDO: short, conversational, factual ------------------------------------------
    ("What's the capital of France?", F, None),
    ("Tell me a joke about cats.", F, None),
    ("Hola, ¿qué tal estás?", F, None),
    ("¿Cuál es la capital de Australia?", F, None),
    ("Translate 'good morning' into Spanish.", F, None),
    ("Traduce 'thank you very much' al francés.", F, None),
    ("Write a haiku about autumn leaves.", F, None),
    ("Escribe un poema corto sobre el mar.", F, None),
    ("Give me three synonyms for 'happy'.", F, None),
    ("Dame tres sinónimos de 'feliz'.", F, None),
    ("Who wrote One Hundred Years of Solitude?", F, None),
    ("¿Quién pintó la Mona Lisa?", F, None),
    ("What's a good name for a golden retriever puppy?", F, None),
    ("Recomiéndame una película de ciencia ficción de los años 80.", F, None),
    ("Thanks, that was really helpful!", F, None),
    ("Gracias, eso es todo por hoy.", F, None),
    ("What time zone is Madrid in?", F, None),
    ("¿Qué tiempo hace normalmente en Sevilla en agosto?", F, None),
    ("Suggest a title for my blog post about balcony gardening.", F, None),
    ("Corrige la ortografía: 'ayer fuímos al sine con mis hamigos'.", F, None),
    ("How do you say 'library' in German?", F, None),
    ("Write a friendly birthday message for my sister, she turns 30 on 12/05/2024.", F, None),
    ("Import taxes on used cars in Spain: are they high?", F, None),
    ("I was born in 1990 in Valencia and moved to Madrid in 2015.", F, None),
    ("Recommend a movie like The Matrix.", F, None),
    ("¿Me cuentas un chiste de programadores?", F, None),
    ("Compile a list of five good board games for kids.", F, None),
    ("What's the zip code of the Empire State Building?", F, None),
    # ---- ANALITICO: maths ------------------------------------------------------------------
    ("Solve for x: 3x + 7 = 22", A, "math"),
    ("Resuelve la ecuación 2x^2 - 8 = 0", A, "math"),
    ("Prove that the square root of 2 is irrational.", A, "math_words"),
    ("Demuestra que la suma de dos números pares es par.", A, "math_words"),
    ("Calculate the compound interest on 1000 euros at 5% for 3 years.", A, "math_words"),
    ("Calcula la derivada de f(x) = x^3 + 2x.", A, "math"),
    ("What is 17 * 23 + 4?", A, "math"),
    ("¿Cuánto es 345 / 5 + 12?", A, "math"),
    ("What's the probability of rolling two sixes with two dice?", A, "math_words"),
    ("¿Cuál es la probabilidad de sacar dos caras seguidas con una moneda?", A, "math_words"),
    ("What is 15% of 80?", A, "math"),
    # ---- ANALITICO: code and stack traces ----------------------------------------------------
    ("Why does this fail?\n```python\nprint(undefined_var)\n```", A, "code_fence"),
    ("¿Por qué falla este código?\n```js\nconst x = y.map(z => z * 2)\n```", A, "code_fence"),
    ("Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\n"
     "KeyError: 'user'", A, "stack_trace"),
    ("Tengo este error: Exception in thread \"main\" java.lang.NullPointerException\n"
     "    at com.example.App.main(App.java:14)", A, "stack_trace"),
    ("Write a Python function that reverses a linked list.", A, "code_topic"),
    ("Escribe una función en JavaScript que valide un email con una expresión regular.", A,
     "code_topic"),
    ("def add(a, b): return a+b  -- why is this so slow in a loop?", A, "code"),
    ("Write a SQL query that returns the top 5 customers by revenue.", A, "code_topic"),
    ("Optimiza esta consulta: SELECT * FROM pedidos WHERE fecha > '2024-01-01'", A, "code"),
    ("Refactor this function so it avoids the nested loops.", A, "code_topic"),
    ("How do I fix a segmentation fault in my C++ program?", A, "stack_trace"),
    ("Revisa mi código, creo que hay un bug en el bucle.", A, "code_topic"),
    # ---- ANALITICO: multi-step -------------------------------------------------------------
    ("Explain step by step how to set up a home VPN.", A, "multi_step"),
    ("Explícame paso a paso cómo cambiar una rueda del coche.", A, "multi_step"),
    ("First summarise the article, then write three exam questions about it.", A, "multi_step"),
    ("Primero resume el artículo y luego dame tres preguntas de examen.", A, "multi_step"),
    ("Compare PostgreSQL and MySQL for a write-heavy workload.", A, "multi_step"),
    ("Compara el modelo económico de Suecia con el de Estados Unidos.", A, "multi_step"),
    ("Make a plan to learn German in six months.", A, "multi_step"),
    ("Haz un plan de entrenamiento para correr una maratón.", A, "multi_step"),
    ("What are the pros and cons of remote work?", A, "multi_step"),
    ("Ventajas y desventajas de la energía nuclear.", A, "multi_step"),
    ("Planifica un viaje de una semana por Andalucía.", A, "multi_step"),
    # ---- ANALITICO: long prompts (estimated tokens = ceil(chars / 4) > 150) ------------------
    (_STORY + "Write a short poem about it.", A, "long_prompt"),
    (_HISTORIA + "Escribe un poema corto sobre ello.", A, "long_prompt"),
]


#: The widened view of risk: each signal with prompts that must fire it (English and Spanish)
#: and near misses that must not.
WIDENED: dict[str, tuple[list[str], list[str]]] = {
    "comparison": ([
        "Which is greater, 2/3 or 0.6?",
        "Is 1.25 kg heavier than 1200 g?",
        "Which number is smaller: 0.09 or 0.1?",
        "¿Qué número es mayor, 0,35 o 1/3?",
        "¿Cuál es mayor: 2 elevado a 10 o 10 al cubo, 1000?",
    ], [
        "Which is bigger, a whale or an elephant?",
        "¿Qué es mayor, un océano o un mar?",
    ]),
    "deduction": ([
        "All roses are flowers and some flowers fade quickly. Can we conclude that some roses fade quickly?",
        "If no reptiles have fur and a snake is a reptile, does a snake have fur?",
        "Kim is taller than Jo, and Jo is taller than Sam. Who is the tallest?",
        "Si todos los perros ladran y Toby es un perro, ¿ladra Toby?",
        "Pedro es más rápido que Juan y Juan es más rápido que Ana. ¿Quién es el más lento?",
    ], [
        "My sister is older than me.",
        "Todos los días camino al trabajo.",
    ]),
    "calendar": ([
        "What day of the week was 1 January 2000?",
        "Is 1900 a leap year?",
        "What day will it be 30 days after a Friday?",
        "¿Qué día de la semana cae el 25 de diciembre de 2030?",
        "Hoy es lunes. ¿Qué día será dentro de 10 días?",
    ], [
        "What day is it today?",
        "Los domingos descanso.",
    ]),
    "number_property": ([
        "Is 97 prime?",
        "List the factors of 36.",
        "What is the greatest common divisor of 48 and 180?",
        "¿Es 57 divisible por 3?",
        "Calcula el mínimo común múltiplo de 4 y 6.",
    ], [
        "Who was the prime minister in 1990?",
        "Los números primos son interesantes.",
    ]),
    "conversion": ([
        "Convert 30 degrees Celsius to Fahrenheit.",
        "How many ounces are in a pound?",
        "What is 3.5 miles in kilometres?",
        "Convierte 100 grados a fahrenheit.",
        "¿Cuántos centímetros hay en una pulgada?",
    ], [
        "Convert this essay into a poem.",
        "Convierte esta frase en una pregunta.",
    ]),
    "exact_target": ([
        "With a 7-minute and an 11-minute hourglass, how do I time exactly 15 minutes?",
        "Can you make exactly 30 cents with nickels and dimes only?",
        "How can I measure exactly half a cup with a 3/4 cup?",
        "¿Cómo puedo medir exactamente 2 litros con jarras de 3 y 5?",
        "Necesito exactamente 7 minutos con relojes de arena de 3 y 5.",
    ], [
        "That is exactly what I meant.",
        "Eso es exactamente lo que quería.",
    ]),
    "code_behaviour": ([
        "My function returns an empty string when the input has spaces.",
        "This script crashes when the file is missing. Why?",
        "Our query gives duplicate rows after the join.",
        "Mi programa imprime los números al revés.",
        "Este código falla cuando la lista está vacía.",
    ], [
        "My phone crashes sometimes.",
        "Mi perro da saltos de alegría.",
    ]),
    "code_request": ([
        "Write a function that reverses a string.",
        "Fix my query, it returns duplicate rows.",
        "Explain this regex: it should match emails.",
        "What does this function return?",
        "Write a class that implements a stack.",
        "Escribe una función que invierta una cadena.",
        "Arregla mi consulta, devuelve filas duplicadas.",
        "Explícame esta expresión regular.",
        "¿Qué hace este código?",
    ], [
        "Explain the function of the liver.",
        "Explícame la función del hígado.",
        "Write a letter to my landlord.",
        "Explain the class struggle in Marx.",
    ]),
    "word_problem": ([
        "A train travels 120 km in 2 hours. How fast is it going?",
        "Tom has 5 apples and buys 3 more. How many apples does he have?",
        "If 3 pencils cost $1.50, what do 7 pencils cost?",
        "Un tren recorre 300 km en 4 horas. ¿A qué velocidad va?",
        "Si compro 3 manzanas a 0,50 € cada una, ¿cuánto pago?",
        "María tiene 12 años y su hermano 3 más. ¿Cuántos años tiene su hermano?",
    ], [
        "I have 2 cats and 3 dogs.",
        "Is 2024 a leap year? What about 1900?",
        "I was born in 1990 in Valencia and moved to Madrid in 2015.",
        "Tengo 2 gatos y 3 perros.",
    ]),
    "proof": ([
        "Show that the sum of two odd numbers is even.",
        "Derive the formula for the area of a circle.",
        "Prove by induction that 1 + 2 + ... + n = n(n+1)/2.",
        "Demuestra por inducción que n^2 >= n.",
        "Obtén la derivación de la fórmula cuadrática.",
    ], [
        "Show that photo again please.",
        "I need proof of purchase for the refund.",
        "Enséñame otra vez esa foto.",
    ]),
    "counting_probability": ([
        "In how many ways can 5 people sit in a row?",
        "What's the probability of drawing an ace from a deck of cards?",
        "If I flip 3 coins, what are the odds of getting exactly two heads?",
        "¿De cuántas maneras se pueden ordenar 4 libros?",
        "Si lanzo dos dados, ¿qué probabilidad hay de sacar 7?",
        "Si tiro una moneda tres veces, ¿cuántos resultados hay?",
    ], [
        "Él dice que vendrá mañana.",
        "Any chance you could help me with my essay?",
        "¿Cuál es la moneda de Japón?",
    ]),
    "reasoning_cue": ([
        "Justify your answer.",
        "Explain why the sky is blue.",
        "Think carefully: is a tomato a fruit?",
        "Walk me through how vaccines work.",
        "Explica por qué el cielo es azul.",
        "Justifica tu respuesta.",
        "Razona la respuesta.",
    ], [
        "Why is the sky blue?",
        "Es una decisión razonable.",
        "Explain the rules of chess.",
    ]),
}
WIDENED_CASES = [(signal, prompt, fires) for signal, (yes, no) in WIDENED.items()
                 for prompt, fires in [*((p, True) for p in yes), *((p, False) for p in no)]]


@pytest.mark.parametrize(("signal", "prompt", "fires"), WIDENED_CASES,
                         ids=[f"{c[0]}-{c[1][:30]}" for c in WIDENED_CASES])
def test_widened_signals(signal: str, prompt: str, fires: bool) -> None:
    verdict = rules.evaluate(prompt, 150)
    assert (signal in verdict.signals) is fires, verdict.signals
    if fires:
        assert verdict.mode is A


def test_every_signal_is_named_and_tested_in_both_languages() -> None:
    assert set(WIDENED) <= set(rules.SIGNAL_NAMES)
    assert len(set(rules.SIGNAL_NAMES)) == len(rules.SIGNAL_NAMES)
    for yes, no in WIDENED.values():
        assert len(yes) >= 4 and no
    for name in rules.SIGNAL_NAMES:  # every signal fires somewhere in the tables
        assert any(name in rules.evaluate(p, 150).signals
                   for p in [c[0] for c in CASES] + [c[1] for c in WIDENED_CASES]), name


def test_the_text_is_read_whole_up_to_the_scan_limit_then_head_and_tail() -> None:
    filler = "The weather was pleasant and we walked along the river. " * 200
    assert "math" in rules.evaluate("What is 17 * 23?\n" + filler, 10**6).signals
    assert "math" in rules.evaluate(filler + "\nWhat is 17 * 23?", 10**6).signals
    middle = filler[:6000] + " What is 17 * 23? " + filler[:6000]
    assert "math" in rules.signals_in(middle)
    assert "math" not in rules.evaluate(middle, 10**6).signals


def chat(content: object, *earlier: JSONObject) -> GenerateRequest:
    messages = [*earlier, {"role": "user", "content": content}]
    return GenerateRequest(Route.CHAT, {"model": "m", "messages": messages}, "rid")  # type: ignore[dict-item]


@pytest.mark.parametrize(("prompt", "mode", "signal"), CASES,
                         ids=[c[0][:40] for c in CASES])
def test_rules_table(prompt: str, mode: Mode, signal: str | None) -> None:
    verdict = rules.evaluate(prompt, 150)
    assert verdict.mode is mode, verdict.signals
    if signal is None:
        assert risk_signals(verdict.signals) == ()
    else:
        assert signal in verdict.signals


def test_the_table_is_big_and_covers_both_directions_and_languages() -> None:
    assert len(CASES) >= 40
    assert sum(1 for c in CASES if c[1] is F) >= 20
    assert sum(1 for c in CASES if c[1] is A) >= 20


def test_estimate_is_characters_over_four_rounded_up() -> None:
    assert rules.estimate_tokens("") == 0
    assert rules.estimate_tokens("abcd") == 1
    assert rules.estimate_tokens("abcde") == 2
    assert rules.evaluate("a" * 600, 150).signals == ()
    assert rules.evaluate("a" * 601, 150).signals == ("long_prompt",)
    assert rules.evaluate("a" * 601, 151).mode is F


def test_rules_read_the_last_user_message_only() -> None:
    request = chat(
        "thanks!",
        {"role": "system", "content": "You are a maths tutor. Prove every claim."},
        {"role": "user", "content": "Solve 2x + 3 = 7"},
        {"role": "assistant", "content": "x = 2"},
    )
    assert rules.evaluate_request(request, 150).mode is F
    assert rules.evaluate_request(chat("Solve 2x + 3 = 7"), 150).mode is A


def test_content_parts_contribute_their_text_only() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}},
        {"type": "text", "text": "Compare these two charts"},
    ]
    verdict = rules.evaluate_request(chat(parts), 150)
    assert verdict.signals == ("multi_step",)
    assert rules.evaluate_request(chat([{"type": "text", "text": "hello"}]), 150).mode is F


def test_completions_use_the_prompt() -> None:
    request = GenerateRequest(Route.COMPLETION, {"prompt": "def fib(n):"}, "rid")
    assert rules.evaluate_request(request, 150).signals == ("code",)
    ids = GenerateRequest(Route.COMPLETION, {"prompt": list(range(200))}, "rid")
    verdict = rules.evaluate_request(ids, 150)
    assert verdict.estimated_tokens == 200 and verdict.signals == ("long_prompt",)


def test_housekeeping_is_the_open_webui_task_prefix_on_the_last_user_message() -> None:
    assert rules.is_housekeeping(chat("### Task:\nGenerate a concise title for the chat"))
    assert rules.is_housekeeping(chat("  ### Task: suggest tags"))
    assert not rules.is_housekeeping(chat("Explain this: ### Task: x"))
    prompt = GenerateRequest(Route.COMPLETION, {"prompt": "### Task: title"}, "rid")
    assert not rules.is_housekeeping(prompt)


def test_rules_take_well_under_a_millisecond() -> None:
    requests = [chat(prompt) for prompt, _, _ in CASES]
    for request in requests:  # warm up
        rules.evaluate_request(request, 150)
    rounds = 20
    # CPU time of this process: other work on a busy machine does not count against it.
    started = time.process_time()
    for _ in range(rounds):
        for request in requests:
            rules.evaluate_request(request, 150)
    per_decision_us = (time.process_time() - started) / (rounds * len(requests)) * 1e6
    print(f"rules: {per_decision_us:.1f} us per decision")
    assert per_decision_us < 500


def test_huge_prompts_are_bounded_in_time() -> None:
    text = (_STORY * 400) + "\nThen compare both."
    started = time.process_time()
    verdict = rules.evaluate(text, 150)
    assert (time.process_time() - started) < 0.05
    assert "long_prompt" in verdict.signals and "multi_step" in verdict.signals
