"""The decision benchmark's own maths, and its replay of the homeostat (no engine needed)."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_decisions",
                                                  ROOT / "scripts/bench_decisions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_decisions"] = module
    spec.loader.exec_module(module)
    return module


def test_auroc_matches_hand_counts() -> None:
    b = bench()
    assert b.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert b.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    # One tie between a positive and a negative counts half: (1 + 0.5) / 2.
    assert b.auroc([0.5, 0.9, 0.5], [True, True, False]) == pytest.approx(0.75)
    assert b.auroc([0.5], [True]) is None
    point, low, high = b.auroc_ci([0.9, 0.8, 0.1, 0.2] * 5, [True, True, False, False] * 5)
    assert point == 1.0 and low is not None and high is not None and low <= point <= high


def record(lang: str, p: float, wrong: bool, index: int) -> dict[str, object]:
    rest = (1.0 - p) / 3
    position = [["Yes", math.log(p)]] + [[f"n{i}", math.log(rest)] for i in range(3)]
    return {"id": f"{lang}-{index}", "lang": lang, "category": "c", "wrong": wrong,
            "prompt": ("What is it?" if lang == "en" else "¿Qué es?") + f" {index}",
            "positions": [position], "chosen": ["Yes"]}


def test_replay_holds_the_set_point() -> None:
    b = bench()
    rnd = random.Random(4)
    records = [record(lang, rnd.uniform(0.3, 0.99), rnd.random() < 0.3, i)
               for i in range(80) for lang in ("en", "es")]
    row = b.replay(records, 0.2, 2000, 1, 1, "max")
    assert abs(row["realised_after_warmup"] - 0.2) <= 0.03
    assert abs(row["realised_unseen"] - 0.2) <= 0.05


def test_wilson_interval_and_median_interval() -> None:
    b = bench()
    low, high = b.wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert b.wilson(0, 0) == (None, None)
    low, high = b.median_ci([1.0, 2.0, 3.0, 4.0, 5.0] * 4)
    assert low is not None and high is not None and low <= 3.0 <= high


def test_step_summary_finds_when_care_came_back() -> None:
    b = bench()
    rows = ([{"t": 1.0 + i, "ttft": 1.0, "mode": "ANALITICO" if i % 2 else "FLUIDO",
              "fallback": "", "status": 200, "intervention": "consistency:5"} for i in range(9)]
            + [{"t": 10.0 + i, "ttft": 0.2, "mode": "ANALITICO", "fallback": "shed: probe skipped",
                "status": 200, "intervention": "prompt:suffix"} for i in range(10)]
            + [{"t": 30.0 + i, "ttft": 1.0, "mode": "ANALITICO" if i % 2 else "FLUIDO",
                "fallback": "", "status": 200, "intervention": "consistency:5"}
               for i in range(10)])
    # Shed in the step (10-20 s), still once after it (a relapse), unshed for good from 24 s.
    states = [{"t": float(t), "shed": "cheaper" if 11 <= t <= 21 or t == 23 else "none",
               "pressure": 0.0, "threshold": 0.5} for t in range(40)]
    f = b.summarise_step(rows, states, 10.0, 10.0, 0.5)
    assert f["recovered_after_s"] == 4.0
    assert f["after_requests"] == 10 and f["care_rate_after_recovery"] == 0.5
    assert f["ttft_p95_step"] == 0.2 and f["shed_in_step"] == 10
    assert f["interventions_in_step"] == {"prompt:suffix": 10}
    report = {"overload": {"target_rate": 0.5, "p95_reduction": 0.8, "on": f,
                           "off": {**f, "ttft_p95_step": 1.0}}}
    verdicts = {what: ok for what, _, _, ok in b.verdicts(report)}
    assert all(verdicts.values()) and len(verdicts) == 2


def test_ttft_summary_counts_restart_prefill_per_placement() -> None:
    b = bench()

    def answer(mode: str, ttft: float, prompt: int = 30, cached: int = 0) -> dict[str, object]:
        usage = {"prompt_tokens": prompt, "prompt_tokens_details": {"cached_tokens": cached}}
        return {"ttft": ttft, "mode": mode, "usage": usage, "fallback": "",
                "times": [ttft, ttft + 0.1, ttft + 0.2]}

    rows = []
    for i in range(4):
        rows.append({"prompt": f"q{i}", "direct": answer("-", 0.5),
                     "direct_lp": answer("-", 0.5 + 0.001 * (i + 2)),
                     "rules": answer("FLUIDO", 0.5), "probe": answer("FLUIDO", 0.6),
                     "spec": answer("FLUIDO" if i % 2 else "ANALITICO", 0.5, 42, 30),
                     "spec4": answer("FLUIDO", 0.8),
                     # 30 + 9 tokens: 24 cached, 15 new (the intervention's 9, 6 more).
                     "specmsg": answer("ANALITICO", 0.9, 39, 24)})
    figures = b.summarise_ttft(rows)
    assert figures["decode_step_s"] == pytest.approx(0.1)
    # The engine's own logprob cost: direct with them vs without, paired (2..5 ms).
    assert figures["engine_logprob_cost"] == pytest.approx(0.0035)
    assert figures["engine_logprob_cost_count"] == 4
    assert figures["restarts_within_bound"] == 2  # 12 new <= 12 + 3
    assert figures["restarts_new_beyond_instruction"] == [0]
    assert figures["restarts_specmsg_within_bound"] == 0  # 15 new > 9 + 3
    assert figures["restarts_specmsg_new_beyond_instruction"] == [6]
    verdicts = {what: ok for what, _, _, ok in b.verdicts({"ttft": figures})}
    assert verdicts["ANALITICO restart prefill (new tokens), placement answer (default)"] is True
    # The fallback placement's figure is printed, not judged.
    assert verdicts["ANALITICO restart prefill (new tokens), placement message"] is None
