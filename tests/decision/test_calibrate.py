"""Calibration maths: the threshold that gives a target ANALITICO rate."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sys
from pathlib import Path

import pytest

from lkn.__main__ import main

from lkn.decision.calibrate import (
    analitico_rate,
    calibrate,
    histogram,
    quantile,
    report,
    threshold_for_rate,
)
from lkn.decision.entropy import normalized_entropy
from lkn.survey import load_prompts, survey, survey_settings
from lkn.values import Route
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import make_settings

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
    assert "note:" not in text
    tied = [0.2] * 5 + [1.0] * 5
    assert "note: many prompts share a score" in report(calibrate(tied, 0.3), tied)


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


# ---- probing a prompt set through the pool (what `lkn calibrate` runs) -------------------


FLAT = [(f" w{i}", math.log(0.1)) for i in range(10)]
PEAKED = [(" a", math.log(0.9)), *((f" w{i}", math.log(0.01)) for i in range(9))]


def write_prompts(path: Path, count: int) -> Path:
    lines = []
    for i in range(count):
        if i % 2:
            lines.append(json.dumps({"prompt": f"Prompt number {i}"}))
        else:
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"Hi {i}"}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_survey_probes_every_prompt_through_the_pool(tmp_path: Path) -> None:
    requests = load_prompts(write_prompts(tmp_path / "p.jsonl", 6))
    async with SGLangDouble(top_logprobs=FLAT) as flat, SGLangDouble(top_logprobs=PEAKED) as peaked:
        settings = survey_settings(make_settings(flat.url, peaked.url), 10, 2, 5.0)
        result = await survey(settings, requests, concurrency=2)
        sent = [r.body for d in (flat, peaked) for r in d.received
                if r.path in ("/v1/chat/completions", "/generate")]
    assert len(result.scores) == 6 and result.failures == {}
    peaked_score = normalized_entropy([lp for _, lp in PEAKED])
    assert peaked_score is not None
    assert {round(s, 6) for s in result.scores} == {1.0, round(peaked_score, 6)}
    assert len(sent) == 6
    for body in sent:
        assert body.get("max_tokens", body.get("sampling_params", {}).get("max_new_tokens")) == 2


async def test_survey_counts_failures_instead_of_stopping(tmp_path: Path) -> None:
    requests = load_prompts(write_prompts(tmp_path / "p.jsonl", 3))
    async with SGLangDouble(top_logprobs=FLAT) as double:
        double.script(Fault.HTTP_500)
        result = await survey(survey_settings(make_settings(double.url), None, None, 5.0),
                              requests, concurrency=1)
    assert len(result.scores) == 2 and result.failures == {"failed": 1}


async def test_calibrate_command_prints_the_threshold(tmp_path: Path) -> None:
    path = write_prompts(tmp_path / "p.jsonl", 4)
    (tmp_path / "none.env").write_text("")
    async with SGLangDouble(top_logprobs=FLAT) as double:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lkn", "--env-file", str(tmp_path / "none.env"), "calibrate",
            str(path), "--target-rate", "0.3", "--engine", double.url, "--top-k", "5",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LKN_LOG_LEVEL": "warning"},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        probes = [r.body for r in double.received if r.path in ("/v1/chat/completions", "/generate")]
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "prompts scored:   4" in text and "LKN_ENTROPY_THRESHOLD=1.0000" in text
    assert "[0.90, 1.00]      4 " in text
    assert len(probes) == 4
    assert all(b.get("top_logprobs", b.get("top_logprobs_num")) == 5 for b in probes)


def test_calibrate_command_rejects_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    env = tmp_path / "empty.env"
    env.write_text("")
    assert main(["--env-file", str(env), "calibrate", str(bad), "--target-rate", "0.3"]) == 2
    assert main(["--env-file", str(env), "calibrate", str(bad), "--target-rate", "3"]) == 2
