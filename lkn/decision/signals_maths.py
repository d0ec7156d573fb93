"""Rule signals about mathematics: formulas, maths words, word problems, proofs, counting."""

from __future__ import annotations

import re

from lkn.decision.scan import Scan, any_match, words

_MATH = (
    re.compile(r"\d(?:\s*(?:[+*×÷^]\s*\(?-?\d|=\s*-?\d|%\s*(?:of|de)\s+\d)|\s+[-/]\s+\d"
               r"|(?<!\w\d)\d*[a-z]\s*[-+=^])"),
    re.compile(r"[a-z](?<!\w.)(?:\s*[\^²³]|(?<=[xyz])\s*[-+=]\s*\(?\d|(?<=[fg])\([a-z]\))"),
    re.compile(r"\\(?:frac|int|sum|sqrt|lim|cdot)\b"),
    re.compile(r"[√∫∑∏≤≥≠π]"),
)
#: "proof", but not "proof of purchase" and the like.
_PROOF_NOUN = (r"proofs?\b(?! of (?:purchase|concept|address|identity|residence|payment|income"
               r"|delivery))")
_MATH_WORDS = words(
    r"prove\b", _PROOF_NOUN, r"solve\b", r"calculat\w*", r"compute\b", r"derivative\b",
    r"differentiate\b", r"equations?\b", r"theorem\b", r"lemma\b", r"probability\b",
    r"factori[sz]e\b", r"integral (?:of|de)\b", r"integrate (?:of|de)\b",
    r"integrar (?:of|de)\b", r"demuestr\w*", r"demostr\w*", r"resuelv\w*", r"resolver\b",
    r"calcul(?:a|ar|e|en|o)\b", r"c[aá]lculo\b", r"derivada\b", r"ecuaci[oó]n\w*",
    r"teorema\b", r"probabilidad\b", r"factoriza\w*")
#: A quantitative word problem: two numbers or more, a unit / rate / money / time, a question.
_NUMBER_START = re.compile(r"\d(?<![\w.,]\d)")  # the first digit of a number ("1.5" is one)
UNIT = (
    r"%|[$€£]|(?:km|kms|m|cm|mm|kg|g|mg|l|ml|h|hr|hrs|min|mins|s|mph|kph|km/h|m/s|ft|in|lb"
    r"|lbs|oz|mi|ha|kw|kwh|w|v|gb|mb|tb"
    r"|(?:kilo|centi|milli)?(?:met(?:er|re)s?|grams?|lit(?:er|re)s?)|miles?|feet|foot"
    r"|inch(?:es)?|pounds?|ounces?|tons?|tonnes?|gallons?|degrees?|hours?|minutes?|seconds?"
    r"|days?|weeks?|months?|years?|euros?|dollars?|cents?|pesos?|percent|per ?cent"
    r"|kil[oó]metros?|metros?|cent[ií]metros?|mil[ií]metros?|kilos?|kilogramos?|gramos?"
    r"|litros?|millas?|pies|pulgadas?|libras?|toneladas?|grados?|horas?|minutos?|segundos?"
    r"|d[ií]as?|semanas?|meses|mes|años?|c[eé]ntimos?|por ?ciento)\b")
_QUANTITY = (
    re.compile(rf"[$€£\d](?:(?<=[$€£])\s?\d|(?<=\d)(?![\d.,]?\d)\s?(?:{UNIT}))"),
    words(r"per\b", r"each\b", r"every\b", r"an hour\b", r"a day\b", r"a week\b",
           r"a month\b", r"a year\b", r"rate\b", r"speed\b", r"costs?\b", r"price\b",
           r"por\b", r"cada\b", r"al d[ií]a\b", r"a la hora\b", r"velocidad\b", r"precio\b",
           r"cuestan?\b"),
)
_QUANTITY_QUESTION = words(
    r"how (?:many|much|long|far|fast|old|often|tall|heavy)\b",
    r"what (?:is|was|will be|would be) (?:the )?(?:total|average|mean|cost|price|speed"
    r"|distance|time|rate|percentage|area|volume|sum|difference|change)\b",
    r"cu[aá]nt(?:o|a|os|as)\b", r"a qu[eé] (?:velocidad|hora|distancia)\b",
    r"qu[eé] distancia\b")
_QUESTION_MARK = re.compile(r"[?¿]")
#: Derivations and proofs.
_PROOF = words(
    r"prov(?:e|es|ed|ing)\b", _PROOF_NOUN,
    r"show (?:mathematically |formally |rigorously )?that\b"
    r"(?! (?:photo|picture|image|video|one|again|page|film|movie))",
    r"deriv(?:e|es|ed|ing|ation|ations)\b", r"by (?:strong )?induction\b",
    r"by contradiction\b", r"q\.e\.d\b", r"theorem\b", r"lemma\b", r"demuestr\w*",
    r"demostr\w*", r"deduc(?:e|ir|ci[oó]n)\b", r"derivaci[oó]n\b", r"por inducci[oó]n\b",
    r"por (?:reducci[oó]n al absurdo|contradicci[oó]n)\b", r"teorema\b")
#: Counting and probability.
_COUNTING = (
    words(
        r"probabilit(?:y|ies)\b", r"odds (?:of|that|are)\b", r"likelihood\b",
        r"chances? (?:of|that) (?:getting|rolling|drawing|winning|picking|at least|exactly)\b",
        r"expected value\b", r"permutations?\b", r"combinations? (?:of|are|can)\b",
        r"how many (?:different |distinct |possible |unique )?(?:ways|arrangements"
        r"|combinations|permutations|subsets|outcomes|orderings|handshakes|paths)\b",
        r"in how many ways\b", r"of how many ways\b",
        *(rf"{verb}\w* (?:\w+ ){{0,2}}?(?:dice|die|coins?)\b"
          for verb in ("roll", "throw", "toss", "flip")),
        r"heads or tails\b", r"coin (?:flip|toss)\w*", r"deck of (?:52 )?cards\b",
        r"pack of (?:52 )?cards\b", r"at random\b",
        r"randomly (?:chosen|selected|drawn|picked)\b", r"choose \d", r"binomial\b",
        r"factorial\b", r"probabilidad(?:es)?\b", r"posibilidades de\b", r"valor esperado\b",
        r"permutaci(?:ón|on|ones)\b", r"combinaciones\b", r"combinaci[oó]n (?:de|posible)\b",
        r"de cu[aá]nt(?:as|os) (?:formas|maneras|modos)\b",
        r"cu[aá]nt(?:as|os) (?:formas|maneras|combinaciones|permutaciones|resultados"
        r"|caminos)\b",
        *(rf"{article} dados?\b" for article in ("un", "el", "los", "dos", "tres", "cuatro", "varios")),
        r"lanz\w* (?:\w+ ){0,3}?monedas?\b", r"tir\w* (?:\w+ ){0,3}?monedas?\b", r"cara o cruz\b", r"baraja\b",
        r"al azar\b", r"aleatoriamente\b"),
    re.compile(r"\d(?<!\w\d)\d* dados?\b"),
)

#: Numbers written as words count as numbers ("forty dollars", "veinte por ciento"); not
#: "one"/"un", mostly articles, nor "once", an English word too.
_NUMBER_WORD = words(
    r"two\b", r"three\b", r"four\b", r"five\b", r"six\b", r"seven\b", r"eight\b",
    r"nine\b", r"ten\b", r"eleven\b", r"twelve\b", r"twenty\b", r"thirty\b", r"forty\b",
    r"fifty\b", r"sixty\b", r"seventy\b", r"eighty\b", r"ninety\b", r"hundred\b",
    r"thousand\b", r"half\b", r"quarter\b", r"dozen\b", r"dos\b", r"tres\b", r"cuatro\b",
    r"cinco\b", r"seis\b", r"siete\b", r"ocho\b", r"nueve\b", r"diez\b", r"doce\b", r"veinte\b", r"treinta\b", r"cuarenta\b", r"cincuenta\b", r"sesenta\b",
    r"setenta\b", r"ochenta\b", r"noventa\b", r"cien\b", r"ciento\b", r"mil\b",
    r"mitad\b", r"docena\b")


def count_numbers(low: str, enough: int) -> int:
    """Numbers in the text, in digits or in words, counted up to ``enough``."""
    found = 0
    for pattern in (_NUMBER_START, _NUMBER_WORD):
        for _ in pattern.finditer(low):
            found += 1
            if found >= enough:
                return found
    return found


def word_problem(scan: Scan) -> bool:
    if count_numbers(scan.low, 2) < 2:
        return False
    if _QUANTITY_QUESTION.search(scan.low) is not None:
        return True
    return _QUESTION_MARK.search(scan.low) is not None and any_match(_QUANTITY, scan.low)


def math(scan: Scan) -> bool:
    return any_match(_MATH, scan.low)


def math_words(scan: Scan) -> bool:
    return _MATH_WORDS.search(scan.low) is not None


def proof(scan: Scan) -> bool:
    return _PROOF.search(scan.low) is not None


def counting_probability(scan: Scan) -> bool:
    return any_match(_COUNTING, scan.low)
