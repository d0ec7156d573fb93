"""scripts/bench.py end to end on a tiny load: it starts its processes, measures, prints every
figure as a number and cleans up. Meeting the targets is the benchmark's to report, not a test's."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 120.0  # a quick run takes 30-60 s on two busy cores
REQUIRED = (
    "gateway_cpu_ms_per_request",
    "gateway_cpu_ms_per_request_log_warning",
    "gateway_cpu_ms_per_stream_rest",
    "gateway_cpu_ms_per_stream_grpc",
    "ttft_direct_p50_ms",
    "ttft_gateway_p50_ms",
    "added_ttft_p50_ms",
    "added_ttft_p99_ms",
    "direct_tokens_per_s_c1",
    "rest_throughput_ratio_c1",
    "rest_throughput_ratio_c64",
    "grpc_throughput_ratio_c64",
    "gateway_peak_rss_mib",
)


def _run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its own session, so a timeout can take down the bench and every process it started.
    proc = subprocess.Popen(
        [sys.executable, "scripts/bench.py", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=BUDGET_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"bench took over {BUDGET_S}s; stderr:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_quick_bench_prints_every_figure_as_a_number() -> None:
    result = _run_bench(
        "--quick", "--json-only", "--requests", "60", "--streams", "16", "--ttft-pairs", "6",
        "--tokens", "8", "--token-delay", "0.005", "--concurrency", "1,64",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0])

    figures = report["figures"]
    missing = [key for key in REQUIRED if key not in figures]
    assert not missing, missing
    not_numbers = {
        key: value for key, value in figures.items()
        if isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    }  # fmt: skip
    assert not not_numbers, not_numbers
    assert {v["result"] for v in report["targets"].values()} <= {"PASS", "FAIL"}
    assert all(run["errors"] == 0 for run in report["runs"].values()), report["runs"]
