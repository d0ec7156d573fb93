"""Rule signals about reasoning asked for in words: comparing quantities, deducing from
premises, calendar and number properties, converting units, puzzles with an exact target,
and a program's wrong behaviour described in words.

Each is a kind of question whose answer is checkable and easy to get wrong, written without
the digits, operators or maths words the other signals look for.
"""

from __future__ import annotations

import re

from lkn.decision.scan import Scan, any_match, words
from lkn.decision.signals_maths import UNIT, count_numbers

_COMPARATIVES = (r"(?:larger|greater|bigger|smaller|less|more|higher|lower|heavier|lighter"
                 r"|longer|shorter|faster|slower|older|younger|cheaper|dearer)\b")
#: Which of two quantities is larger (with two numbers in the text).
_COMPARISON = words(
    rf"which (?:one |number |value )?(?:is|was|would be) {_COMPARATIVES}",
    rf"is (?:[\w.,]+ ){{0,3}}?{_COMPARATIVES} than\b",
    r"qu[eé] (?:n[uú]mero |valor )?es (?:mayor|menor|m[aá]s grande|m[aá]s peque[nñ]o)\b",
    r"cu[aá]l (?:es|ser[aá]) (?:mayor|menor|m[aá]s grande|m[aá]s peque[nñ]o)\b")
#: Conclusions drawn from premises.
_DEDUCTION = words(
    r"does it follow\b", r"it follows that\b", r"can we conclude\b", r"must it be true\b",
    r"is it necessarily\b", r"logically (?:follow|true|valid)\w*", r"syllogism\b",
    r"se deduce\b", r"se sigue\b", r"podemos concluir\b", r"es necesariamente\b",
    r"silogismo\b")
_PREMISE = words(r"if all\b", r"if every\b", r"if no\b", r"if some\b", r"all \w+ are\b",
                 r"si todos\b", r"si todas\b", r"si ning[uú]n\b", r"si algunos\b",
                 r"todos los \w+ (?:son|tienen)\b", r"todas las \w+ (?:son|tienen)\b")
#: One link of an ordering chain ("A is older than B").
_RELATION = re.compile(
    r"(?<![a-z])(?:older|younger|taller|shorter|faster|slower|heavier|lighter|richer|poorer"
    r"|bigger|smaller) than\b|(?<![a-z])m[aá]s (?:alt|baj|viej|joven|j[oó]venes|r[aá]pid"
    r"|lent|pesad|liger|ric|pobre|grande|peque[nñ])\w* que\b")
_QUESTION = re.compile(r"[?¿]")
_WEEKDAYS = (r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|lunes|martes"
             r"|mi[eé]rcoles|jueves|viernes|s[aá]bado|domingo)")
#: Calendar arithmetic: weekdays after N days, leap years, days in a span.
_CALENDAR = (
    words(r"what day (?:of the week )?(?:will|was|would|did|falls?)\b",
          r"qu[eé] d[ií]a (?:de la semana )?(?:ser[aá]|fue|era|cae|caer[aá])\b",
          r"leap years?\b", r"a[nñ]os? bisiestos?\b",
          rf"how many {_WEEKDAYS}s\b", r"how many (?:days|weeks|weekdays|working days) "
          r"(?:are )?(?:there )?(?:between|until|in|from)\b",
          rf"cu[aá]ntos {_WEEKDAYS}s?\b", r"cu[aá]ntos d[ií]as (?:hay |faltan )?"
          r"(?:entre|hasta|desde)\b"),
    re.compile(rf"\d(?<![\w.,]\d)\d* (?:days?|weeks?|d[ií]as|semanas) (?:after|before|from|"
               rf"later|despu[eé]s|antes)\b|(?<![a-z])dentro de \d"),
)
#: A property of a given number (asked with a digit in the text).
_NUMBER_PROPERTY = words(
    r"prime(?: number)?s?\b(?! (?:minister|time|video|member))", r"primos?\b",
    r"divisible\b", r"even or odd\b", r"odd or even\b", r"par o impar\b",
    r"factors? of\b", r"factores de\b", r"multiples? of\b", r"m[uú]ltiplos? de\b",
    r"square roots? of\b", r"ra[ií]z cuadrada de\b", r"greatest common\b",
    r"least common\b", r"gcd\b", r"lcm\b", r"m[aá]ximo com[uú]n\b", r"m[ií]nimo com[uú]n\b")
_DIGIT = re.compile(r"\d")
#: Converting a quantity to another unit.
_CONVERSION = (
    re.compile(rf"\d(?<![\w.,]\d)[\d.,]*\s?(?:{UNIT}) (?:to|into|in|a|en) (?:[a-z]+ )?"
               rf"(?:{UNIT}|celsius|fahrenheit|kelvin)"),
    words(r"convert\w* (?:\w+ ){0,2}?(?:to|into) (?:celsius|fahrenheit|kelvin|metric"
          r"|imperial)\b", r"fahrenheit to celsius\b",
          r"celsius to fahrenheit\b", r"how many (?:\w+ ){0,2}?(?:are )?(?:there )?in an? \w+",
          r"cu[aá]nt[oa]s (?:\w+ ){0,2}?hay en (?:un|una)\b",
          r"convierte\w* (?:\w+ ){0,3}?(?:a|en) (?:celsius|fahrenheit|kil[oó]metros|millas"
          r"|metros|litros|gramos|kilos|libras|pies|grados)\b"),
)
#: A puzzle with an exact target ("measure exactly 4 litres", "pay exactly 13 cents").
_EXACT = words(r"exactly \d", r"exactamente \d", r"measure exactly\b", r"medir exactamente\b")
#: A program's behaviour described in words ("my script prints None instead of ...").
_PROGRAMS = (r"(?:\w+ )?(?:scripts?|functions?|programs?|code|query|queries|loops?|methods?"
             r"|funci[oó]n|funciones|programas?|c[oó]digo|consultas?|bucles?|m[eé]todos?)")
_BEHAVIOUR = (r" (?:\w+ ){0,3}?(?:returns?|prints?|outputs?|throws?|raises?|crash\w*|fails?"
              r"|hangs?|gives?|devuelve\w*|imprime\w*|lanza\w*|falla\w*|da|muestra)\b")
_CODE_BEHAVIOUR = words(*(rf"{owner} {_PROGRAMS}{_BEHAVIOUR}"
                          for owner in ("my", "this", "our", "mi", "este", "esta", "nuestro",
                                        "nuestra")))


def comparison(scan: Scan) -> bool:
    return _COMPARISON.search(scan.low) is not None and count_numbers(scan.low, 2) >= 2


def deduction(scan: Scan) -> bool:
    if _DEDUCTION.search(scan.low) is not None:
        return True
    if _PREMISE.search(scan.low) is not None and _QUESTION.search(scan.low) is not None:
        return True
    links = 0
    for links, _ in enumerate(_RELATION.finditer(scan.low), start=1):
        if links == 2:
            return True
    return False


def calendar(scan: Scan) -> bool:
    return any_match(_CALENDAR, scan.low)


def number_property(scan: Scan) -> bool:
    return _NUMBER_PROPERTY.search(scan.low) is not None and _DIGIT.search(scan.low) is not None


def conversion(scan: Scan) -> bool:
    return any_match(_CONVERSION, scan.low)


def exact_target(scan: Scan) -> bool:
    return _EXACT.search(scan.low) is not None


def code_behaviour(scan: Scan) -> bool:
    return _CODE_BEHAVIOUR.search(scan.low) is not None
