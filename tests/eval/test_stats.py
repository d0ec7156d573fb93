from __future__ import annotations

import pytest

from lkn.eval.stats import mcnemar, wilson

pytestmark = pytest.mark.fast


def test_wilson_known_values() -> None:
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 0) == (0.0, 0.0)
    low, high = wilson(0, 20)
    assert low == 0.0 and 0.0 < high < 0.2


def test_mcnemar_exact() -> None:
    # 26 discordant the baseline's way against 11 the candidate's: p about 0.02.
    candidate = [True] * 11 + [False] * 26 + [True] * 40
    baseline = [False] * 11 + [True] * 26 + [True] * 40
    result = mcnemar(candidate, baseline)
    assert (result.wins, result.losses) == (11, 26)
    assert result.p_value == pytest.approx(0.0201, abs=1e-3)
    assert not result.better
    assert mcnemar([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar([True], [])
