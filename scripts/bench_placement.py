"""Cache-aware placement against least-loaded, on two live SGLang engines.

    python scripts/bench_placement.py                      # starts two SGLang CPU engines
    python scripts/bench_placement.py --engines URL1,URL2  # engines already running
                                                           # (with --enable-cache-report)

For each policy (least_loaded, then cache_aware) it empties both engines' prefix caches
(``/flush_cache``), starts a gateway with ``LKN_PLACEMENT=<policy>``, and runs the same
workload: ``--chats`` three-turn conversations, every turn streamed, ``--concurrency``
requests at a time (both engines busy); ``--order interleaved`` (default) runs every chat's
first turn, then every second turn, then every third, as when users pause between turns,
each round in its own random order (``--seed``: users do not come back in the order they
started; ``--no-shuffle`` keeps chat order), and ``back-to-back`` runs one chat's turns in
a row per client. Each conversation opens with its own document, so a later turn's prompt
is mostly history. The figures come from SGLang itself: ``usage.prompt_tokens_details.
cached_tokens`` (``--enable-cache-report``). A later turn *reuses its conversation's
prefix* when the engine had at least the previous turn's whole prompt cached (the
conversation so far, which only the engine that served the previous turn can hold). Time to
first token is measured at the client, to the first content chunk; the load average is
printed before and after each policy's run.

Decisions are off (``LKN_MODE=passthrough``) so that the prompts the engines see are the
clients' own; everything else is at the gateway's defaults. Everything it starts is stopped
at the end; logs go to ``--log-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.benchkit import Gateway, StreamedAnswer, launch_gateway, percentile  # noqa: E402

SYSTEM = "You are a concise assistant. Answer in one or two sentences."
FOLLOW_UPS = ("Summarise that in five words.", "Now give one more detail.")
WORDS = (
    "river stone market lantern harbor engine garden winter copper signal forest candle "
    "ladder orbit meadow thunder basket canyon violin glacier pepper tunnel marble falcon "
    "quiet bright narrow ancient rapid golden hollow gentle silver crooked distant humble"
).split()


def document(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


@dataclass
class Turn:
    chat: int
    turn: int
    engine: str
    prompt_tokens: int
    cached_tokens: int
    ttft: float


@dataclass
class Run:
    policy: str
    turns: list[Turn] = field(default_factory=list)
    errors: int = 0


async def one_turn(http: aiohttp.ClientSession, url: str, model: str,
                   messages: list[dict[str, str]],
                   max_tokens: int) -> tuple[str, str, dict[str, Any], float]:
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    answer = StreamedAnswer()
    async with http.post(url + "/v1/chat/completions", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        engine = response.headers.get("X-LKN-Engine", "?")
        async for raw in response.content:
            event = answer.feed(raw)
            if event is not None and "error" in event:
                raise RuntimeError(f"error event: {event['error']}")
    ttft = answer.ttft or (time.perf_counter() - answer.started)
    return engine, answer.text, answer.usage, ttft


def opening(index: int, doc_words: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Read this note and tell me its theme.\n\n"
                                        f"{document(index, doc_words)}"}]


async def turn_of(http: aiohttp.ClientSession, url: str, model: str, index: int, turn: int,
                  messages: list[dict[str, str]], max_tokens: int, run: Run) -> bool:
    """One turn of chat ``index``; appends the answer and the next question to ``messages``."""
    try:
        engine, answer, usage, ttft = await one_turn(http, url, model, messages, max_tokens)
    except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        print(f"  chat {index} turn {turn} failed: {exc}", file=sys.stderr)
        run.errors += 1
        return False
    details = usage.get("prompt_tokens_details") or {}
    run.turns.append(Turn(index, turn, engine, int(usage.get("prompt_tokens", 0)),
                          int(details.get("cached_tokens", 0)), ttft))
    if turn < 3:
        messages += [{"role": "assistant", "content": answer},
                     {"role": "user", "content": FOLLOW_UPS[turn - 1]}]
    return True


async def workload(url: str, policy: str, args: argparse.Namespace) -> Run:
    run = Run(policy)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        async with http.get(url + "/v1/models") as r:
            model = (await r.json())["data"][0]["id"]
        chats = {i: opening(i, args.doc_words) for i in range(args.chats)}
        alive = set(chats)
        queue: list[list[tuple[int, int]]] = []

        async def client() -> None:
            while queue:
                for index, turn in queue.pop(0):
                    if index in alive and not await turn_of(
                            http, url, model, index, turn, chats[index], args.max_tokens, run):
                        alive.discard(index)

        rng = random.Random(args.seed)
        if args.order == "back-to-back":
            # Each client runs one conversation's three turns in a row, then the next one.
            queue[:] = [[(i, t) for t in (1, 2, 3)] for i in range(args.chats)]
            await asyncio.gather(*(client() for _ in range(args.concurrency)))
        else:
            # Users pause between turns: every chat's first turn, then every second turn ...
            for turn in (1, 2, 3):
                order = list(range(args.chats))
                if args.shuffle:
                    rng.shuffle(order)
                queue[:] = [[(i, turn)] for i in order]
                await asyncio.gather(*(client() for _ in range(args.concurrency)))
    return run


def flush(engines: list[str]) -> None:
    for engine in engines:
        for _ in range(60):
            try:
                request = urllib.request.Request(engine + "/flush_cache", method="POST")
                with urllib.request.urlopen(request, timeout=30) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(1)  # 400 while requests still run
        else:
            raise SystemExit(f"could not flush the cache of {engine}")


def start_gateway(engines: list[str], policy: str, log_dir: Path, port: int) -> Gateway:
    gateway = launch_gateway(
        f"gateway-{policy}", ",".join(engines), log_dir, env_file=ROOT / "config/.env.example",
        port=port, grpc_port=None, new_session=True, append=True,
        settings={"LKN_PLACEMENT": policy, "LKN_MODE": "passthrough", "LKN_READ_TIMEOUT": "300"},
    )  # fmt: skip
    if not gateway.wait_ready(timeout=60.0, interval=0.5):
        gateway.stop(grace=20.0)
        raise SystemExit(f"the gateway for {policy} did not start; see {gateway.child.log_path}")
    return gateway


def start_engines(ports: list[int], log_dir: Path,
                  extra_args: str) -> list[tuple[str, dict[str, str]]]:
    started = []
    for port in ports:
        env = dict(os.environ, LKN_LOG_DIR=str(log_dir / f"engine-{port}"),
                   LKN_ENV_FILE=str(ROOT / "config/.env.example"), ENGINE_KIND="sglang",
                   ENGINE_DEVICE="cpu", ENGINE_PORT=str(port),
                   ENGINE_EXTRA_ARGS=f"--enable-cache-report {extra_args}".strip())
        started.append((f"http://127.0.0.1:{port}", env))
    procs = [subprocess.Popen(["bash", "scripts/start_engine.sh"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE) for _, env in started]
    for proc in procs:
        if proc.wait() != 0:
            for _, env in started:
                subprocess.run(["bash", "scripts/stop_engine.sh", "sglang"], cwd=ROOT, env=env)
            raise SystemExit("an engine did not start (see its log under --log-dir)")
    return started


def report(run: Run) -> dict[str, float]:
    by_chat: dict[int, dict[int, Turn]] = {}
    for t in run.turns:
        by_chat.setdefault(t.chat, {})[t.turn] = t
    later = [t for t in run.turns if t.turn > 1]
    reused = [t for t in later
              if t.turn - 1 in by_chat[t.chat]
              and t.cached_tokens >= by_chat[t.chat][t.turn - 1].prompt_tokens]
    prompt = sum(t.prompt_tokens for t in later)
    cached = sum(t.cached_tokens for t in later)
    ttfts = [t.ttft * 1000 for t in later]
    engines: dict[str, int] = {}
    for t in run.turns:
        engines[t.engine] = engines.get(t.engine, 0) + 1
    figures = {
        "later_turns": len(later),
        "reused": len(reused),
        "reuse_rate": len(reused) / len(later) if later else 0.0,
        "cached_share": cached / prompt if prompt else 0.0,
        "ttft_p50_ms": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_p95_ms": percentile(ttfts, 0.95, "index"),
        "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else float("nan"),
        "first_ttft_p50_ms": statistics.median([t.ttft * 1000 for t in run.turns if t.turn == 1]
                                               or [float("nan")]),
    }
    print(f"{run.policy:>12}: later turns reusing their conversation's prefix "
          f"{figures['reused']}/{figures['later_turns']} ({figures['reuse_rate']:.0%}); "
          f"cached share of later-turn prompt tokens {figures['cached_share']:.0%}; "
          f"later-turn TTFT p50 {figures['ttft_p50_ms']:.0f} ms, p95 {figures['ttft_p95_ms']:.0f} "
          f"ms, mean {figures['ttft_mean_ms']:.0f} ms; first-turn TTFT p50 "
          f"{figures['first_ttft_p50_ms']:.0f} ms; requests per engine {engines}; "
          f"failed conversations {run.errors}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", help="two running SGLang engine URLs, comma-separated")
    parser.add_argument("--ports", default="35080,35081", help="ports for engines it starts")
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--doc-words", type=int, default=120)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--order", choices=("interleaved", "back-to-back"),
                        default="interleaved",
                        help="interleaved: all first turns, then all second turns ... (users "
                             "pause between turns); back-to-back: one chat's turns in a row")
    parser.add_argument("--seed", type=int, default=1, help="of the interleaved rounds' order")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                        help="interleaved rounds in chat order")
    parser.add_argument("--gateway-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--engine-args", default="--watchdog-timeout 900",
                        help="extra SGLang flags for engines it starts (a long watchdog: a "
                             "forward step starved of CPU on a shared machine is not a hang)")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "logs" / "bench_placement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--policies", default="least_loaded,cache_aware")
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)

    started: list[tuple[str, dict[str, str]]] = []
    if args.engines:
        engines = [u.strip().rstrip("/") for u in args.engines.split(",") if u.strip()]
    else:
        started = start_engines([int(p) for p in args.ports.split(",")], args.log_dir,
                                args.engine_args)
        engines = [url for url, _ in started]
    results: dict[str, dict[str, float]] = {}
    shuffled = ", shuffled rounds" if args.order == "interleaved" and args.shuffle else ""
    print(f"{args.chats} three-turn chats ({args.order}{shuffled}), {args.concurrency} "
          f"requests at a time, over {engines}")
    try:
        for policy in args.policies.split(","):
            flush(engines)
            gateway = start_gateway(engines, policy, args.log_dir, args.gateway_port)
            before = os.getloadavg()
            started_at = time.perf_counter()
            try:
                run = asyncio.run(workload(gateway.url, policy, args))
            finally:
                gateway.stop(grace=20.0)
            results[policy] = report(run)
            after = os.getloadavg()
            results[policy].update(load_before=before[0], load_after=after[0],
                                   seconds=time.perf_counter() - started_at)
            print(f"{'':>12}  {results[policy]['seconds']:.0f} s; load average (1 min) "
                  f"{before[0]:.2f} before, {after[0]:.2f} after")
    finally:
        for _, env in started:
            subprocess.run(["bash", "scripts/stop_engine.sh", "sglang"], cwd=ROOT, env=env,
                           capture_output=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
