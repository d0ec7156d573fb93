"""The house plan of ``lkn/``, drawn from the code: every import (also those only for type
checking) runs down the layers below, never up, and no module imports itself back through
others; the runtime never imports the lab (``lkn.eval``); modules stay at most 400 lines and
functions at most 40.

``python -m tests.test_import_map`` prints the map, layer by layer.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parents[1] / "lkn"

#: Lowest first. A module's layer is that of the longest prefix naming it; an import may go
#: to a lower layer or sideways within its layer, never up, and no cycle may form.
LAYERS: tuple[tuple[str, ...], ...] = (
    # values and pure rules: nothing of the gateway's state
    ("lkn._proto", "lkn.values", "lkn.errors", "lkn.privacy", "lkn.loopguard", "lkn.breaker",
     "lkn.logs", "lkn.care.specs", "lkn.care.policy"),
    ("lkn.config",),
    # what the engines, the care and a request look like
    ("lkn.metrics", "lkn.outcome", "lkn.placement", "lkn.engines", "lkn.care",
     "lkn.client_request"),
    ("lkn.decision",),
    ("lkn.engine_state", "lkn.pool", "lkn.speculative"),
    ("lkn.queues",),
    ("lkn.exchange",),
    ("lkn.gateway",),
    ("lkn.rest", "lkn.rpc"),
    ("lkn.server", "lkn.workers"),
    # tools and the lab, above the product
    ("lkn.survey", "lkn.eval", "lkn.__main__", "lkn"),
)
#: Runtime modules: everything but the tools and the lab.
LAB = ("lkn.eval", "lkn.survey", "lkn.__main__")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def module_names() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``lkn`` modules ``name`` imports, anywhere in it (function bodies and
    ``TYPE_CHECKING`` blocks included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def layer_of(name: str) -> tuple[int, str]:
    best = (-1, "")
    for index, group in enumerate(LAYERS):
        for prefix in group:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best[1]):
                best = (index, prefix)
    return best


def import_map() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()
            if not name.startswith("lkn._proto")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> Iterator[str]:
    for name, targets in sorted(graph.items()):
        layer = layer_of(name)[0]
        for target in sorted(targets):
            to_layer = layer_of(target)[0]
            if to_layer > layer:
                yield f"{name} (layer {layer}) imports {target} (layer {to_layer})"


def test_every_module_has_a_layer() -> None:
    assert [name for name in import_map() if layer_of(name)[0] < 0] == []


def test_no_import_runs_back_up_and_none_forms_a_cycle() -> None:
    graph = import_map()
    assert len(graph) > 60
    assert list(upward(graph)) == []
    assert cycles(graph) == []


def test_the_runtime_never_imports_the_lab() -> None:
    lab = [f"{name} imports {target}" for name, targets in import_map().items()
           if not name.startswith(LAB) and name != "lkn"
           for target in targets if target.startswith(LAB)]
    assert lab == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert list(upward({"lkn.config": {"lkn.gateway"}})) != []
    assert list(upward({"lkn.gateway": {"lkn.config"}})) == []


def long_functions(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} {length}"


def test_modules_and_functions_stay_small() -> None:
    sources = [p for p in module_names().values() if "_proto" not in p.parts]
    big = [f"{p.relative_to(PACKAGE.parent)} {n}" for p in sources
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert big == []
    assert [line for p in sources for line in long_functions(p)] == []


if __name__ == "__main__":
    graph = import_map()
    for number, group in enumerate(LAYERS):
        print(f"layer {number}: {', '.join(group)}")
        for name in sorted(n for n in graph if layer_of(n)[0] == number):
            print(f"  {name} -> {', '.join(sorted(graph[name])) or '-'}")
    problems = list(upward(graph)) + [" -> ".join(c) for c in cycles(graph)]
    print("\n".join(problems) or "no import runs back up; no cycle")
