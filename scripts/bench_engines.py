#!/usr/bin/env python3
"""Decode speed and time to first token of OpenAI-compatible engines (SGLang, llama.cpp),
measured directly (no gateway), so that engines serving the same model can be compared.

    python scripts/bench_engines.py http://127.0.0.1:31001 [http://127.0.0.1:31000 ...]
        [--tokens 128] [--streams 4] [--prompt-tokens 600] [--repeats 3]

For each engine URL (the model is the first that its /v1/models lists):

- one stream: one streamed chat answer of ``--tokens`` tokens (``ignore_eos``, so every
  engine generates the same length); tokens/s = (completion tokens - 1) / (last chunk - first
  chunk), i.e. decoding alone, the prompt excluded;
- ``--streams`` concurrent streams: the same request sent at once; total tokens/s = all
  completion tokens / wall time from the first send to the last answer's end, and the
  median per-stream decode rate;
- TTFT: a streamed request whose prompt is about ``--prompt-tokens`` tokens (code text,
  with a fresh nonce at its start so that no prefix cache helps), ``max_tokens`` 1: the
  time from the send to the first chunk with content, the median of ``--repeats``.

Every figure is the median of ``--repeats`` runs. Only the standard library is used; runs
with any Python 3.11. Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.benchkit import StreamedAnswer  # noqa: E402

#: Text the long prompt is made of (about 90 tokens a block with Qwen2.5's tokenizer).
CODE_BLOCK = (
    "def merge(left, right):\n"
    "    out = []\n"
    "    i = j = 0\n"
    "    while i < len(left) and j < len(right):\n"
    "        if left[i] <= right[j]:\n"
    "            out.append(left[i]); i += 1\n"
    "        else:\n"
    "            out.append(right[j]); j += 1\n"
    "    return out + left[i:] + right[j:]\n\n"
)


@dataclass
class Stream:
    ttft: float  #: seconds from the send to the first chunk with content
    decode_tokens_per_s: float | None
    completion_tokens: int
    prompt_tokens: int
    end: float  #: time.monotonic() when the answer ended


def model_of(url: str) -> str:
    with urllib.request.urlopen(url + "/v1/models", timeout=30) as resp:
        return str(json.load(resp)["data"][0]["id"])


def stream_chat(url: str, model: str, content: str, max_tokens: int, timeout: float) -> Stream:
    """One streamed chat completion; reads the SSE chunks as they arrive."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    body = json.dumps({
        "model": model, "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True},
    })
    answer = StreamedAnswer(reasoning=True)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{url}: HTTP {resp.status}: {resp.read()[:300]!r}")
    for raw in resp:
        answer.feed(raw)
    end = time.monotonic()
    conn.close()
    if not answer.times:
        raise RuntimeError(f"{url}: no content in the answer")
    first, last = answer.times[0], answer.times[-1]
    tokens = int(answer.usage.get("completion_tokens", 0))
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return Stream(first, rate, tokens, int(answer.usage.get("prompt_tokens", 0)), end)


def concurrent(url: str, model: str, content: str, max_tokens: int, n: int,
               timeout: float) -> tuple[float, list[Stream]]:
    """``n`` identical streams sent at once: (wall seconds, the streams)."""
    results: list[Stream | BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(n + 1)

    def one() -> None:
        start.wait()
        try:
            r: Stream | BaseException = stream_chat(url, model, content, max_tokens, timeout)
        except BaseException as exc:  # reported below
            r = exc
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    streams = [r for r in results if isinstance(r, Stream)]
    return max(s.end for s in streams) - t0, streams


def long_prompt(target_tokens: int) -> str:
    blocks = max(1, round(target_tokens / 90))
    return (f"[{uuid.uuid4().hex}] Review this code and name one bug:\n\n" + CODE_BLOCK * blocks)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Figures:
    url: str
    model: str
    one_stream_tokens_per_s: float
    streams: int
    concurrent_total_tokens_per_s: float
    concurrent_per_stream_tokens_per_s: float
    ttft_s: float
    ttft_prompt_tokens: int


def bench(url: str, args: argparse.Namespace) -> Figures:
    model = model_of(url)
    ask = "Write a long Python tutorial about sorting algorithms."
    stream_chat(url, model, ask, 8, args.timeout)  # warm-up (first-request costs)
    one, total, per, ttft, ptoks = [], [], [], [], []
    for _ in range(args.repeats):
        s = stream_chat(url, model, ask, args.tokens, args.timeout)
        if s.decode_tokens_per_s:
            one.append(s.decode_tokens_per_s)
        wall, streams = concurrent(url, model, ask, args.tokens, args.streams, args.timeout)
        total.append(sum(x.completion_tokens for x in streams) / wall)
        per.append(median([x.decode_tokens_per_s for x in streams if x.decode_tokens_per_s]))
        t = stream_chat(url, model, long_prompt(args.prompt_tokens), 1, args.timeout)
        ttft.append(t.ttft)
        ptoks.append(t.prompt_tokens)
    return Figures(url, model, median(one), args.streams, median(total), median(per),
                   median(ttft), int(median([float(p) for p in ptoks])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("urls", nargs="+", help="engine base URLs (OpenAI-compatible)")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    ap.add_argument("--streams", type=int, default=4, help="concurrent streams")
    ap.add_argument("--prompt-tokens", type=int, default=600, help="TTFT prompt length (about)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    rows = []
    for url in args.urls:
        print(f"[bench_engines] {url} ...", file=sys.stderr, flush=True)
        rows.append(bench(url.rstrip("/"), args))
    print(f"{'engine':28} {'model':30} {'1 stream tok/s':>14} "
          f"{f'{args.streams} streams tok/s':>16} {'per stream':>10} {'TTFT s':>8} {'prompt':>6}")
    for r in rows:
        print(f"{r.url:28} {r.model:30} {r.one_stream_tokens_per_s:14.1f} "
              f"{r.concurrent_total_tokens_per_s:16.1f} {r.concurrent_per_stream_tokens_per_s:10.1f} "
              f"{r.ttft_s:8.2f} {r.ttft_prompt_tokens:6d}")
    print(json.dumps({"tokens": args.tokens, "repeats": args.repeats,
                      "engines": [asdict(r) for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
