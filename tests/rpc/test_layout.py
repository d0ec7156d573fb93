"""The gRPC front-end's place in the architecture, and its generated code's freshness."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
LKN = ROOT / "lkn"
#: What the gRPC front-end may use: the gateway and the protocol-neutral modules.
RPC_MAY_IMPORT = ("lkn.rpc", "lkn._proto", "lkn.gateway", "lkn.exchange", "lkn.client_request",
                  "lkn.errors", "lkn.values", "lkn.config")  # fmt: skip


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_rpc_front_end_goes_through_the_gateway_only() -> None:
    for path in sorted((LKN / "rpc").glob("*.py")):
        for name in imports_of(path):
            if name.startswith("lkn"):
                assert name.startswith(RPC_MAY_IMPORT), f"{path.name} imports {name}"


def test_the_core_never_imports_grpc_or_generated_code() -> None:
    front = {"rpc", "rest", "_proto"}
    for path in sorted(LKN.rglob("*.py")):
        relative = path.relative_to(LKN)
        if relative.parts[0] in front or relative.name in ("server.py", "__main__.py"):
            continue
        for name in imports_of(path):
            assert not name.startswith(("grpc", "lkn.rpc", "lkn._proto")), f"{relative}: {name}"


def test_generated_code_matches_the_protos() -> None:
    script = ROOT / "scripts" / "gen_protos.sh"
    pinned = re.search(r'^GRPCIO_TOOLS_VERSION="([^"]+)"', script.read_text(), re.M)
    assert pinned is not None
    if version("grpcio-tools") != pinned[1]:
        pytest.fail(f"scripts/gen_protos.sh pins grpcio-tools {pinned[1]}; install that version")
    result = subprocess.run(
        ["bash", str(script), "--check"],
        env={**os.environ, "LKN_PYTHON": sys.executable},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
