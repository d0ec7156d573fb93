"""The pinned GPU engine environment resolves on Linux x86-64 for the Python in use.

No GPU is needed: pip resolves scripts/engine/requirements-sglang-gpu.txt (with
dependencies, wheels only) for the manylinux x86-64 platforms and this interpreter's
version, without installing anything. It fails on a conflict, on a pin without a wheel
for that platform, and on any package the pins leave out. Needs the package index (PyPI).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.livestack import ROOT

pytestmark = pytest.mark.timeout(900)

REQUIREMENTS = ROOT / "scripts" / "engine" / "requirements-sglang-gpu.txt"
#: The newest glibc tag any pin needs (SGLang's own wheel) and every older one.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[canonical(name)] = version
    return found


def test_gpu_requirements_resolve_for_linux_x86_64(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--quiet", "--disable-pip-version-check", "--report", str(report),
         "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
         *platforms, "-r", str(REQUIREMENTS)],
        capture_output=True, text=True, timeout=840,
    )
    assert result.returncode == 0, (
        f"pip could not resolve {REQUIREMENTS.name} for CPython {version} on Linux x86-64:\n"
        + "\n".join(line for line in result.stderr.splitlines() if "is ignored" not in line))
    resolved = {
        canonical(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    wanted = pins()
    assert resolved == wanted, {
        "not pinned": sorted(set(resolved) - set(wanted)),
        "pinned, not needed": sorted(set(wanted) - set(resolved)),
        "other version": sorted(n for n in set(wanted) & set(resolved)
                                if wanted[n] != resolved[n]),
    }
    wheels = [item["download_info"]["url"] for item in json.loads(report.read_text())["install"]]
    assert all(url.endswith(".whl") for url in wheels)
