"""Calibration maths: the threshold that gives a target ANALITICO rate."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lkn.decision.calibrate import (
    analitico_rate,
    calibrate,
    histogram,
    quantile,
    report,
    threshold_for_rate,
)
from lkn.decision.survey import load_prompts
from lkn.types import Route

pytestmark = pytest.mark.fast

#: 0.00, 0.01, ..., 0.99: the q quantile is 0.99 * q by linear interpolation.
EVEN = [i / 100 for i in range(100)]


def test_quantile_interpolates_linearly() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([5.0], 0.3) == 5.0
    assert quantile(EVEN, 0.7) == pytest.approx(0.693)
    assert quantile(list(reversed(EVEN)), 0.0) == 0.0
    assert quantile(EVEN, 1.0) == 0.99


def test_threshold_is_the_one_minus_rate_quantile() -> None:
    threshold = threshold_for_rate(EVEN, 0.3)
    assert threshold == pytest.approx(0.693)
    assert analitico_rate(EVEN, threshold) == pytest.approx(0.30)
    assert analitico_rate(EVEN, threshold_for_rate(EVEN, 0.1)) == pytest.approx(0.10)
    assert analitico_rate(EVEN, threshold_for_rate(EVEN, 0.0)) == 0.0


def test_on_a_known_distribution_the_rate_is_met() -> None:
    rng = random.Random(7)
    scores = [rng.betavariate(2, 5) for _ in range(10_000)]
    for rate in (0.05, 0.3, 0.5, 0.8):
        result = calibrate(scores, rate)
        assert result.achieved_rate == pytest.approx(rate, abs=0.001)
    # Beta(2, 5) has median about 0.2644.
    assert dict(calibrate(scores, 0.3).percentiles)[50] == pytest.approx(0.2644, abs=0.01)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError):
        threshold_for_rate([], 0.3)
    with pytest.raises(ValueError):
        threshold_for_rate(EVEN, 1.5)
    with pytest.raises(ValueError):
        quantile(EVEN, -0.1)


def test_histogram_and_report_show_the_distribution() -> None:
    lines = histogram([0.05, 0.05, 0.95, 1.0], bins=10, width=10)
    assert len(lines) == 10
    assert lines[0].split()[2] == "2" and lines[0].endswith("#" * 10)
    assert lines[9].split()[2] == "2" and lines[5].split()[2] == "0"
    text = report(calibrate(EVEN, 0.3), EVEN)
    assert "LKN_ENTROPY_THRESHOLD=0.6930" in text
    assert "p50 0.4950" in text and "min 0.0000" in text and "max 0.9900" in text


def test_prompt_file_accepts_prompts_and_chats(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        json.dumps({"prompt": "Once upon a time"}) + "\n\n"
        + json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
    )
    requests = load_prompts(path)
    assert [r.route for r in requests] == [Route.COMPLETION, Route.CHAT]
    path.write_text('{"prompt": "ok"}\n{"messages": "nope"}\n')
    with pytest.raises(ValueError, match="prompts.jsonl:2"):
        load_prompts(path)
