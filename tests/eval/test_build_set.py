"""The bundled evaluation set is what ``python -m lkn.eval.build_set`` writes."""

from __future__ import annotations

import pytest

from lkn.eval.build_set import OUT, build, serialised
from lkn.eval.items import ITEMS_FILE, load_items

pytestmark = pytest.mark.fast


def test_the_bundled_set_is_the_generated_one() -> None:
    assert OUT == ITEMS_FILE
    assert serialised(build()) == ITEMS_FILE.read_text(encoding="utf-8")


def test_items_are_numbered_within_their_category_and_every_eighth_is_quick() -> None:
    seen: dict[str, int] = {}
    for item in load_items():
        index = seen.get(item.category, 0)
        seen[item.category] = index + 1
        assert item.id == f"{item.category}-{index + 1:03d}"
        assert item.quick == (index % 8 == 0)
