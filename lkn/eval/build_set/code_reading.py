"""Code reading: short Python programs and what they print."""

from __future__ import annotations

from lkn.eval.build_set.answers import Prompt, number, text

#: A program and what it prints.
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


def code_reading() -> list[Prompt]:
    """Each program asked about in turn in English and in Spanish."""
    out: list[Prompt] = []
    for index, (code, result) in enumerate(CODE):
        answer = text(result) if isinstance(result, str) else number(result)
        if index % 2 == 0:
            out.append(("en", f"What does this Python code print?\n\n{code}", answer))
        else:
            out.append(("es", f"¿Qué imprime este código Python?\n\n{code}", answer))
    return out
