"""Rule signals about code: fences, stack traces, code syntax, code topics, code requests."""

from __future__ import annotations

import re

from lkn.decision.scan import Scan, any_match, words

_CODE_FENCE = re.compile(r"```|~~~")
_STACK_TRACE = (
    words(r"traceback \(most recent call last\)", r"file \"[^\"\n]+\", line \d",
           r"panicked at\b", r"segmentation fault\b", r"core dumped\b", r"stack ?trace\b"),
    re.compile(r"e(?<=\w.)(?:rror|xception)\b(?::|\s+at\b)"),  # KeyError: / ...Exception at
    re.compile(r"\n[^\S\n]+at (?:[\w.$<>]+\([^)\n]*\)|[^\n]+:\d+:\d+\)?(?=\n|$))"),
)
# Code syntax is case-sensitive (it runs on the text as written), so prose ("Import taxes
# ...") does not look like code.
_CODE = (
    words(r"def \w+\s*\(", r"function\s*\w*\s*\(", r"const \w+\s*=", r"let \w+\s*=",
           r"var \w+\s*=", r"public (?:static )?(?:void|class|int|String)\b",
           r"console\.log\(", r"printf\(", r"fn \w+\s*\(", r"func \w+\s*\("),
    re.compile(r"#include\s*[<\"]|=>|S(?<!\w.)ystem\.out\."),
    re.compile(r"\n[^\S\n]*(?:(?:export\s+)?(?:public\s+)?class \w|(?:from [\w.]+ )?import \w)"),
)
#: ``SELECT ... FROM`` within one statement (up to ``;`` or the end of the line).
_SELECT = re.compile(r"s(?<!\w.)elect\b")
_FROM = re.compile(r"f(?<!\w.)rom\b")
_CODE_TOPIC = words(
    r"python\b", r"javascript\b", r"typescript\b", r"golang\b", r"kotlin\b", r"haskell\b",
    r"sql\b", r"powershell\b", r"html\b", r"css\b", r"regexp?\b", r"dockerfile\b",
    r"rest api\b", r"api rest\b", r"php\b", r"perl\b", r"matlab\b",
    r"java\b(?! (?:coffee|island|sea))", r"c(?:\+\+|#)(?!\w)", r"bash (?:script|command)s?\b",
    r"shell (?:script|command)s?\b", r"c[oó]digo\b",
    r"code\b(?<!zip code)(?<!postal code)(?<!dress code)",
    r"refactor\w*", r"debug\w*", r"depur\w*", r"compiler\b", r"segfault\b", r"algorithm\w*",
    r"algoritmo\w*", r"expresi[oó]n regular\b", r"regular expression\b", r"unit tests?\b",
    r"pruebas unitarias\b")
#: Asking to write, fix or explain code (a function, query, regex ...) with no code in it.
_GAP = r"(?:\W+\w+){0,4}?\W+"  # up to four words in between, opened only after the verb
_CODE_NOUNS = (
    r"(?:functions?|methods?|quer(?:y|ies)|regex(?:es|p)?|regular expressions?|scripts?"
    r"|programs?|snippets?|loops?|algorithms?|unit tests?|test cases?|endpoints?|apis?"
    r"|sql|stored procedures?|lambdas?|decorators?|recursi(?:on|ve)|linked lists?|arrays?"
    r"|hash ?maps?|structs?|enums?|interfaces?|modules?|cli|bugs?|code"
    r"|funci[oó]n|funciones|m[eé]todos?|consultas?|expresi[oó]n regular|programas?"
    r"|bucles?|algoritmos?|pruebas? unitarias?|listas? enlazadas?"
    r"|procedimientos? almacenados?|c[oó]digo)\b")
_EXPLAINED_NOUNS = (
    r"(?:regex(?:es|p)?|regular expressions?|quer(?:y|ies)|scripts?|snippets?|algorithms?"
    r"|loops?|recursion|lambdas?|decorators?|sql|code|expresi[oó]n regular|consultas?"
    r"|fragmentos?|algoritmos?|bucles?|recursi[oó]n|c[oó]digo)\b")
_BUILD_VERBS = (
    "write", "writing", r"implement\w*", "create", "fix", "fixing", "debug",
    "refactor", r"optimi[sz]e", "define", "code", "convert", "port", r"escrib\w*",
    "crea", r"cr[eé]ame", r"genera\w*", r"arregl\w*", r"corrig\w*",
    r"corrij\w*", r"optimiza\w*", r"refactoriza\w*", "convierte", "programa")
_CODE_REQUEST = words(
    *(rf"{verb}\b{_GAP}{_CODE_NOUNS}" for verb in _BUILD_VERBS),
    rf"explain\w*{_GAP}{_EXPLAINED_NOUNS}", rf"expl[ií]ca\w*{_GAP}{_EXPLAINED_NOUNS}",
    r"write an? (?:\w+ )?class\b(?! (?:schedule|plan|syllabus))",
    r"implement an? (?:\w+ )?class\b", r"define an? (?:\w+ )?class\b",
    r"explain (?:this|my|the following|that) (?:\w+ )?(?:function|method|class)\b",
    r"expl[ií]ca\w* (?:esta|mi|la siguiente) (?:\w+ )?(?:funci[oó]n|clase)\b",
    r"what (?:does|will|would) (?:this|it|the following|my) (?:\w+ )?"
    r"(?:print|output|return|code|function|script|program|snippet|regex|query|loop)\b",
    r"qu[eé] (?:hace|imprime|devuelve|muestra) (?:este|esta|el siguiente|la siguiente)"
    r" (?:\w+ )?(?:c[oó]digo|funci[oó]n|script|programa|consulta|bucle|regex)\b")

def code(scan: Scan) -> bool:
    if any_match(_CODE[:2], scan.raw):
        return True
    if ("class " in scan.raw or "import " in scan.raw) and _CODE[2].search(scan.raw):
        return True
    statement_end = -1  # a later SELECT before this end of statement has the same answer
    for select in _SELECT.finditer(scan.low):
        if select.start() < statement_end:
            continue
        statement_end = min(_find(scan.low, ";", select.end()), _find(scan.low, "\n", select.end()))
        if _FROM.search(scan.low, select.end(), statement_end) is not None:
            return True
    return False


def _find(text: str, sub: str, start: int) -> int:
    at = text.find(sub, start)
    return len(text) if at < 0 else at


def code_fence(scan: Scan) -> bool:
    return _CODE_FENCE.search(scan.raw) is not None


def stack_trace(scan: Scan) -> bool:
    return any_match(_STACK_TRACE, scan.low)


def code_topic(scan: Scan) -> bool:
    return _CODE_TOPIC.search(scan.low) is not None


def code_request(scan: Scan) -> bool:
    return _CODE_REQUEST.search(scan.low) is not None
