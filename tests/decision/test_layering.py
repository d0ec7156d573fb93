"""The decision package is core: no web framework, no gRPC, no front-end, no gateway, and
nothing of the evaluation harness (lkn.eval, the lab, imports the runtime, not the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lkn.decision

pytestmark = pytest.mark.fast

FORBIDDEN = ("aiohttp.web", "grpc", "lkn.rest", "lkn.rpc", "lkn._proto", "lkn.gateway",
             "lkn.server", "lkn.eval")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_decision_modules_import_only_core() -> None:
    package = Path(lkn.decision.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for name in imported_modules(path):
            bad = [f for f in FORBIDDEN if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.name} imports {name}"
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 160, path.name
