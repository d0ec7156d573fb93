"""Throughput of one gateway process against LKN_WORKERS processes on this machine.

    PYTHONPATH=. python scripts/bench_workers.py [--workers 1,2] [--seconds 15] [--concurrency 64]

The engine is the SGLang test double in its own process (``python -m scripts.lib.sglang_double``,
no token delay, so the gateway is the bottleneck); for each worker count a gateway
(``python -m lkn serve``, default settings apart from ports, engine URL and LKN_WORKERS) is
started, warmed up, and driven for ``--seconds`` by ``--concurrency`` concurrent clients,
non-streamed chat requests of 16 tokens, then 64-token streams, over keep-alive connections
(new connections every ``--reconnect`` requests, so the kernel spreads them over the
workers). The load generator runs in this process and shares the machine's cores: on a
machine with few cores the figures show how much of the cores one process cannot use, not
the gateway's limit on a bigger host. Prints one line per run and a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.benchkit import Gateway, launch_gateway, start_double  # noqa: E402


def start_gateway(engine: str, workers: int, log_dir: Path) -> Gateway:
    gateway = launch_gateway(f"gateway-{workers}", engine, log_dir,
                             env_file=ROOT / "config/.env.example",
                             settings={"LKN_WORKERS": str(workers)})  # fmt: skip
    if not gateway.wait_ready(timeout=60.0, interval=0.2):
        gateway.stop(grace=30.0)
        raise SystemExit(f"the gateway did not start; see {gateway.child.log_path}")
    time.sleep(1.0 if workers > 1 else 0.0)  # let every worker finish its first checks
    return gateway


async def drive(url: str, stream: bool, seconds: float, concurrency: int,
                reconnect: int) -> tuple[int, int, float]:
    tokens = 64 if stream else 16
    body = json.dumps({"model": "smollm2", "max_tokens": tokens, "stream": stream,
                       "messages": [{"role": "user", "content": "Say hello"}]}).encode()
    headers = {"Content-Type": "application/json"}
    done = errors = 0
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, errors
        while time.monotonic() < stop_at:
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as http:
                for _ in range(reconnect):
                    if time.monotonic() >= stop_at:
                        return
                    try:
                        async with http.post(url + "/v1/chat/completions", data=body,
                                             headers=headers) as r:
                            await r.read()
                            if r.status == 200:
                                done += 1
                            else:
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, errors, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reconnect", type=int, default=20,
                        help="requests per connection before a new one")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "logs" / "bench_workers")
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        double, engine = start_double("double", args.log_dir)
    except RuntimeError as exc:
        raise SystemExit(f"the engine double did not start: {exc}") from None
    results: dict[str, dict[str, float]] = {}
    print(f"{os.cpu_count()} cores; engine double at {engine}; {args.concurrency} clients, "
          f"{args.seconds:.0f} s per run")
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            gateway = start_gateway(engine, workers, args.log_dir)
            url = gateway.url
            try:
                asyncio.run(drive(url, False, 2.0, args.concurrency, args.reconnect))  # warm-up
                for stream in (False, True):
                    done, errors, elapsed = asyncio.run(
                        drive(url, stream, args.seconds, args.concurrency, args.reconnect))
                    kind = "64-token streams" if stream else "non-streamed"
                    rate = done / elapsed
                    results[f"workers={workers} {kind}"] = {"per_s": rate, "errors": errors}
                    print(f"LKN_WORKERS={workers}: {kind}: {rate:.0f} requests/s "
                          f"({done} in {elapsed:.1f} s, {errors} errors)", flush=True)
            finally:
                gateway.stop(grace=30.0)
    finally:
        double.stop(grace=30.0)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
