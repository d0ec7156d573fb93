"""The shipped Qwen2.5-Coder-0.5B policy is what ``lkn eval --choose`` makes of its saved runs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from lkn.care.policy import load_policy
from tests.livestack import ROOT

pytestmark = pytest.mark.fast

POLICY = ROOT / "lkn" / "care" / "policies" / "qwen2.5-coder-0.5b-instruct.json"
RUNS = ROOT / "docs" / "eval-runs" / "qwen"


async def _choose(runs: list[Path], out: Path, alpha: float) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "LKN_ENV_FILE": str(ROOT / "config" / ".env.example")}
    args = [a for run in runs for a in ("--from", str(run))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lkn", "eval", *args, "--choose", "--alpha", str(alpha), "--out", str(out),
        "--policy-out", str(out / "policy.json"), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    return proc.returncode or 0, err.decode()


async def test_the_qwen_policy_is_reproduced_from_its_saved_runs(tmp_path: Path) -> None:
    shipped = json.loads(POLICY.read_text(encoding="utf-8"))
    assert shipped["model"] == "Qwen2.5-Coder-0.5B-Instruct"  # the name llama.cpp serves
    runs = [RUNS / name for name in shipped["measured"]["source"].split(" + ")]
    assert runs and all(run.is_file() for run in runs)
    code, err = await _choose(runs, tmp_path, shipped["significance"])
    assert code == 0, err
    made = json.loads((tmp_path / "policy.json").read_text(encoding="utf-8"))
    assert made["rules"] == shipped["rules"] and made["rejected"] == shipped["rejected"]
    assert made["measured"]["items"] == shipped["measured"]["items"]
    assert made["measured"]["open_chat_prompts"] == shipped["measured"]["open_chat_prompts"]
    # Compositions (stories, lists, explanations) are kept apart and get nothing; the other
    # requests get greedy decoding with DRY, never the verification instruction.
    policy = load_policy(POLICY)  # and the gateway loads it
    assert policy.rules[0].signals == ("open_ended",)
    assert policy.choose(("open_ended",), None)[0].name == "none"
    for signals in ((), ("math",), ("word_problem", "reasoning_cue")):
        chosen = policy.choose(signals, None)[0]
        assert chosen.sampling and chosen.prompt is None, signals
    assert policy.default.name == "none"  # so the care it gives is ANALITICO
