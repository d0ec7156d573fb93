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
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_double() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "scripts.lib.sglang_double", "--port", "0"],
                               cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"the engine double did not start: {line!r}")
    return process, line.split()[1]


def start_gateway(engine: str, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), LKN_ENV_FILE=str(ROOT / "config/.env.example"),
               LKN_ENGINE_URLS=engine, LKN_PORT=str(port), LKN_GRPC_PORT=str(free_port()),
               LKN_WORKERS=str(workers))
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "lkn", "serve"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the gateway did not start; see {log}")
        time.sleep(0.2)
    time.sleep(1.0 if workers > 1 else 0.0)  # let every worker finish its first checks
    return process, url


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    double, engine = start_double()
    results: dict[str, dict[str, float]] = {}
    print(f"{os.cpu_count()} cores; engine double at {engine}; {args.concurrency} clients, "
          f"{args.seconds:.0f} s per run")
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            gateway, url = start_gateway(engine, workers, args.log_dir / f"gateway-{workers}.log")
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
                stop(gateway)
    finally:
        stop(double)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
