"""Benchmark the decisions against a live engine: what speculative FLUIDO costs, what the
entropy score tells, and whether the homeostat holds its set points.

    PYTHONPATH=. python scripts/bench_decisions.py [--phases auroc,rate,ttft,overload]

The engine is the project's own (``scripts/start_engine.sh``; on a machine without a GPU
that is SGLang on the CPU with SmolLM2-135M-Instruct), started with ``--enable-cache-report``
on a free port unless ``--engine-url`` names a running one. Each gateway runs in its own
process (``python -m lkn serve``, default settings apart from ports, engine and the setting
under test; logging on). Phases:

* ``auroc``: every checkable question of the evaluation set, answered greedily by the engine
  with its top-10 logprobs; the answers graded; AUROC of each score feature for wrong answers
  within each language (bootstrap 95 % intervals), over the first 1/4/8 answer tokens and
  the whole answer, with and without skipping tokens that carry no answer.
* ``rate``: the homeostat (pure, injected clock) on a few thousand requests replayed from
  the measured scores, with a drifting mix of languages and a drifting score shift; the
  realised ANALITICO rate against the set point, and on prompts the warm-up never saw.
* ``ttft``: direct engine vs gateways (rules, entropy speculative, entropy with a separate
  probe), streamed, one at a time, interleaved; added time to first token per strategy split
  by FLUIDO/ANALITICO; prefill tokens (new vs cached, from the engine's usage) of restarts.
* ``overload``: a load step of long-document requests where care (separate probes and the
  system-prompt instruction, which re-prefills the document) saturates the engine, with the
  homeostat's shedding on and off: time to first token p95 during the step, and how soon the
  care rate is back at its set point after it.

Prints the figures and writes them as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lkn.config import DecisionSettings, HomeostatSettings  # noqa: E402
from lkn.decision.entropy import FEATURES, read_positions  # noqa: E402
from lkn.decision.homeostat import Homeostat  # noqa: E402
from lkn.engines.wire import probe_positions  # noqa: E402
from lkn.restart import token_texts  # noqa: E402
from lkn.types import GenerateRequest, Route  # noqa: E402

TIMEOUT = aiohttp.ClientTimeout(total=300)
#: The engine's served model name (the gateway routes by it), learnt at start.
MODEL = ["default"]


def say(message: str) -> None:
    print(f"[bench_decisions {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- statistics ---------------------------------------------------------------------


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    ranked = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    pos_rank = sum(r for r, y in zip(ranks, labels) if y)
    return (pos_rank - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def auroc_ci(scores: Sequence[float], labels: Sequence[bool], rounds: int = 1000,
             seed: int = 1) -> tuple[float | None, float | None, float | None]:  # fmt: skip
    point = auroc(scores, labels)
    if point is None:
        return None, None, None
    rnd = random.Random(seed)
    n = len(scores)
    samples = []
    for _ in range(rounds):
        pick = [rnd.randrange(n) for _ in range(n)]
        value = auroc([scores[i] for i in pick], [labels[i] for i in pick])
        if value is not None:
            samples.append(value)
    samples.sort()
    return point, samples[int(0.025 * len(samples))], samples[int(0.975 * len(samples)) - 1]


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---- processes ----------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    engine_url: str = ""
    started_engine: bool = False
    gateways: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.env_file = self.workdir / "empty.env"
        self.env_file.write_text("")

    def engine_env(self, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(ENGINE_DEVICE=env.get("ENGINE_DEVICE", "cpu"), ENGINE_PORT=str(port),
                   LKN_LOG_DIR=str(self.workdir / "engine"),
                   ENGINE_EXTRA_ARGS=(env.get("ENGINE_EXTRA_ARGS", "")
                                      + " --enable-cache-report").strip())  # fmt: skip
        return env

    def start_engine(self, port: int) -> None:
        (self.workdir / "engine").mkdir(exist_ok=True)
        say(f"starting the engine on port {port} (scripts/start_engine.sh)")
        out = subprocess.run(["bash", "scripts/start_engine.sh"], cwd=ROOT, check=True,
                             env=self.engine_env(port), stdout=subprocess.PIPE, text=True)
        self.engine_url = out.stdout.strip().splitlines()[-1]
        self.started_engine = True

    def stop(self) -> None:
        for proc in self.gateways:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.gateways:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.gateways.clear()
        if self.started_engine:
            port = self.engine_url.rsplit(":", 1)[1]
            subprocess.run(["bash", "scripts/stop_engine.sh"], cwd=ROOT,
                           env=self.engine_env(int(port)), check=False)

    async def gateway(self, name: str, port: int, **settings: str) -> str:
        env = dict(os.environ)
        env.update(LKN_ENV_FILE=str(self.env_file), LKN_ENGINE_URLS=self.engine_url,
                   LKN_PORT=str(port), LKN_GRPC_ENABLED="false", LKN_HEALTH_INTERVAL="1",
                   PYTHONPATH=str(ROOT), **settings)  # fmt: skip
        log = (self.workdir / f"gateway-{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "lkn", "serve"], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.gateways.append(proc)
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(240):
                try:
                    async with session.get(url + "/ready") as response:
                        if response.status == 200:
                            return url
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"gateway {name} exited; see {log.name}")
                await asyncio.sleep(0.5)
        raise RuntimeError(f"gateway {name} not ready; see {log.name}")


# ---- requests -----------------------------------------------------------------------


@dataclass
class Answer:
    ttft: float | None
    mode: str
    fallback: str
    text: str
    usage: dict[str, Any]
    token_times: list[float]
    status: int


async def stream_chat(session: aiohttp.ClientSession, url: str, messages: list[Any],
                      max_tokens: int) -> Answer:  # fmt: skip
    body = {"model": MODEL[0], "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    ttft: float | None = None
    text, usage, times = "", {}, []
    async with session.post(url + "/v1/chat/completions", json=body, timeout=TIMEOUT) as resp:
        mode = resp.headers.get("X-LKN-Mode", "-")
        fallback = resp.headers.get("X-LKN-Fallback", "")
        if resp.status != 200:
            await resp.read()
            return Answer(None, mode, fallback, "", {}, [], resp.status)
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            event = json.loads(line[5:])
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    now = time.perf_counter() - started
                    ttft = now if ttft is None else ttft
                    times.append(now)
                    text += piece
    return Answer(ttft, mode, fallback, text, usage, times, 200)


# ---- phase: AUROC -------------------------------------------------------------------


def load_items(path: Path, per_language: int) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip()]  # fmt: skip
    checkable = [i for i in items if i["answer"]["type"] != "open"]
    checkable.sort(key=lambda i: zlib.crc32(i["id"].encode()))
    chosen: list[dict[str, Any]] = []
    for lang in ("en", "es"):
        chosen += [i for i in checkable if i["lang"] == lang][:per_language]
    return chosen


async def answer_items(engine: str, items: list[dict[str, Any]], max_tokens: int,
                       concurrency: int) -> list[dict[str, Any]]:  # fmt: skip
    from lkn.eval.grader import grade  # the evaluation harness's grader

    gate = asyncio.Semaphore(concurrency)
    out: list[dict[str, Any]] = []

    async def one(session: aiohttp.ClientSession, item: dict[str, Any]) -> None:
        body = {"model": MODEL[0], "max_tokens": max_tokens, "temperature": 0,
                "logprobs": True, "top_logprobs": 10,
                "messages": [{"role": "user", "content": item["prompt"]}]}
        async with gate:
            async with session.post(engine + "/v1/chat/completions", json=body,
                                    timeout=TIMEOUT) as resp:  # fmt: skip
                reply = await resp.json()
        choice = reply["choices"][0]
        text = choice["message"]["content"] or ""
        out.append({
            "id": item["id"], "lang": item["lang"], "category": item["category"],
            "prompt": item["prompt"],
            "wrong": not grade(text, item["answer"], choice.get("finish_reason")),
            "positions": [[[t.token, t.logprob] for t in p] for p in probe_positions(reply)],
            "chosen": token_texts(reply),
        })

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, item) for item in items))
    return out


def item_score(record: dict[str, Any], tokens: int | None, feature: str, skip: bool) -> float:
    from lkn.types import TopToken

    positions = [tuple(TopToken(t, lp) for t, lp in p) for p in record["positions"]]
    chosen = list(record["chosen"]) if skip else ["x"] * len(positions)
    if tokens is not None:
        positions, chosen = positions[:tokens], chosen[:tokens]
    reading = read_positions(positions, chosen=chosen, feature=feature)
    return 0.0 if reading is None else reading.score


def report_auroc(records: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {"items": len(records), "wrong": sum(r["wrong"] for r in records)}
    print(f"\nAUROC for wrong answers ({len(records)} checkable questions, "
          f"{figures['wrong']} wrong); 95% bootstrap intervals")
    print(f"{'tokens':>6} {'feature':>7} {'skip':>5} {'en':>20} {'es':>20} {'pooled':>8} "
          f"{'ranked/lang':>11}")
    rows = []
    for tokens in (1, 4, 8, None):
        for feature in FEATURES:
            for skip in (True, False):
                row: dict[str, Any] = {"tokens": tokens or "all", "feature": feature,
                                       "skip": skip}
                cells = []
                for lang in ("en", "es"):
                    group = [r for r in records if r["lang"] == lang]
                    s = [item_score(r, tokens, feature, skip) for r in group]
                    point, low, high = auroc_ci(s, [r["wrong"] for r in group])
                    row[lang] = [point, low, high]
                    cells.append(f"{fmt(point)} [{fmt(low)},{fmt(high)}]")
                scores = [item_score(r, tokens, feature, skip) for r in records]
                labels = [r["wrong"] for r in records]
                row["pooled"] = auroc(scores, labels)
                # Ranked within language (what the normaliser does): language is no signal.
                ranked = []
                for r, s in zip(records, scores):
                    same = [x for q, x in zip(records, scores) if q["lang"] == r["lang"]]
                    ranked.append(sum(1 for x in same if x < s) / len(same))
                row["ranked"] = auroc(ranked, labels)
                rows.append(row)
                print(f"{str(tokens or 'all'):>6} {feature:>7} {str(skip):>5} {cells[0]:>20} "
                      f"{cells[1]:>20} {fmt(row['pooled']):>8} {fmt(row['ranked']):>11}")
    figures["rows"] = rows
    for lang in ("en", "es"):
        group = [r for r in records if r["lang"] == lang]
        figures[f"error_rate_{lang}"] = sum(r["wrong"] for r in group) / max(1, len(group))
    print("error rate: " + ", ".join(f"{k[-2:]} {v:.1%}" for k, v in figures.items()
                                     if k.startswith("error_rate")))  # fmt: skip
    return figures


# ---- phase: rate --------------------------------------------------------------------


def replay(records: list[dict[str, Any]], target: float, n: int, seed: int,
           tokens: int, feature: str) -> dict[str, Any]:  # fmt: skip
    """The homeostat on a drifting stream replayed from measured scores."""
    rnd = random.Random(seed)
    pools: dict[str, list[tuple[float, GenerateRequest]]] = {"en": [], "es": []}
    for r in records:
        request = GenerateRequest(Route.CHAT, {"messages": [{"role": "user",
                                                             "content": r["prompt"]}]}, "b")
        pools[r["lang"]].append((item_score(r, tokens, feature, True), request))
    # Seen (warm-up) and unseen halves of the questions.
    halves: dict[str, tuple[list[Any], list[Any]]] = {}
    for lang, pool in pools.items():
        pool.sort(key=lambda p: zlib.crc32(str(p[1].body).encode()))
        halves[lang] = (pool[: len(pool) // 2], pool[len(pool) // 2:])
    clock = [0.0]
    settings = DecisionSettings(homeostat=HomeostatSettings(target_rate=target))
    homeostat = Homeostat(settings, clock=lambda: clock[0])
    realised: list[bool] = []
    for i in range(n):
        clock[0] += rnd.expovariate(5.0)
        share_es = 0.15 + 0.7 * i / n
        lang = "es" if rnd.random() < share_es else "en"
        seen, unseen = halves[lang]
        raw, request = rnd.choice(seen if i < n // 2 else unseen)
        shift = 0.1 * i / n + 0.08 * math.sin(2 * math.pi * i / 800)
        raw = min(1.0, max(0.0, raw + shift + rnd.gauss(0.0, 0.02)))
        realised.append(homeostat.judge(raw, request, ()).uncertain)
    warm = settings.homeostat.window
    return {
        "target": target, "requests": n,
        "realised_all": sum(realised) / n,
        "realised_after_warmup": sum(realised[warm:]) / (n - warm),
        "realised_unseen": sum(realised[n // 2:]) / (n - n // 2),
        "threshold_changes": homeostat.rate.changes,
    }


def report_rate(records: list[dict[str, Any]], n: int, tokens: int) -> dict[str, Any]:
    print(f"\nrealised ANALITICO rate, homeostat on a drifting stream of {n} requests "
          f"(replayed from the measured scores, max entropy over {tokens} answer tokens)")
    print(f"{'target':>6} {'seed':>4} {'whole':>7} {'after warm-up':>13} {'unseen half':>11}")
    rows = []
    for target in (0.1, 0.2, 0.3, 0.5):
        for seed in (1, 2, 3):
            row = replay(records, target, n, seed, tokens, "max")
            rows.append(row)
            print(f"{target:>6.2f} {seed:>4} {row['realised_all']:>7.3f} "
                  f"{row['realised_after_warmup']:>13.3f} {row['realised_unseen']:>11.3f}")
    worst = max(abs(r["realised_after_warmup"] - r["target"]) for r in rows)
    worst_unseen = max(abs(r["realised_unseen"] - r["target"]) for r in rows)
    print(f"worst deviation: {worst * 100:.1f} points over the stream (after warm-up), "
          f"{worst_unseen * 100:.1f} on the unseen half")
    return {"rows": rows, "worst_points": worst * 100, "worst_unseen_points": worst_unseen * 100}


# ---- phase: ttft --------------------------------------------------------------------

TTFT_PROMPTS = [
    "What is the capital of France?", "¿Cuál es la capital de España?",
    "Name a primary colour.", "Nombra un planeta del sistema solar.",
    "What is 12 + 30?", "¿Cuánto es 7 por 8?", "Who wrote Don Quixote?",
    "¿Quién pintó la Mona Lisa?", "Give me a synonym for happy.",
    "Dime un sinónimo de rápido.", "How many legs does a spider have?",
    "¿Cuántos días tiene una semana?", "What colour is the sky on a clear day?",
    "¿De qué color es la hierba?", "What is the opposite of cold?",
    "¿Qué idioma se habla en Brasil?", "Which animal says moo?",
    "¿Cuál es el océano más grande?", "What do bees make?", "¿Qué animal ladra?",
    "What is water made of?", "¿Cuántos lados tiene un triángulo?",
    "Name a fruit that is yellow.", "¿Cuál es la moneda de Japón?",
    "What is the largest planet?", "¿En qué continente está Egipto?",
    "How many hours are in a day?", "¿Cuál es el río más largo de Europa?",
    "What is the freezing point of water in Celsius?", "¿Qué gas respiramos?",
]


async def phase_ttft(stack: Stack, ports: list[int], tokens: int, rounds: int, warmup: int,
                     threshold: float, max_tokens: int) -> dict[str, Any]:  # fmt: skip
    # A generous probe budget: on a busy CPU the first token alone can take seconds, and a
    # probe past its budget would leave every decision to the rules.
    entropy = {"LKN_DECISION_STRATEGY": "entropy", "LKN_PROBE_TOKENS": str(tokens),
               "LKN_ENTROPY_THRESHOLD": str(threshold), "LKN_PROBE_TIMEOUT": "60"}
    gateways = {
        "rules": await stack.gateway("rules", ports[0]),
        "spec": await stack.gateway("spec", ports[1], **entropy),
        "probe": await stack.gateway("probe", ports[2], LKN_SPECULATIVE="false", **entropy),
    }
    prompts = [p for _ in range(rounds) for p in TTFT_PROMPTS]
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        say(f"warming the entropy gateways' score ranks ({warmup} requests each)")
        for i in range(warmup):
            messages = [{"role": "user", "content": TTFT_PROMPTS[i % len(TTFT_PROMPTS)]}]
            for name in ("spec", "probe"):
                await stream_chat(session, gateways[name], messages, 1)
        say(f"measuring {len(prompts)} prompts x 4 paths, interleaved")
        for i, prompt in enumerate(prompts):
            messages = [{"role": "system", "content": "Answer in one short sentence."},
                        {"role": "user", "content": prompt}]
            order = ["direct", "rules", "spec", "probe"]
            rnd = random.Random(i)
            rnd.shuffle(order)
            row: dict[str, Any] = {"prompt": prompt}
            for path in order:
                url = stack.engine_url if path == "direct" else gateways[path]
                # Every path starts from a cold cache: each pays the prompt's prefill itself
                # (what a restart then reuses is what its own held request prefilled).
                async with session.post(stack.engine_url + "/flush_cache?timeout=30") as r:
                    await r.read()
                answer = await stream_chat(session, url, messages, max_tokens)
                row[path] = {"ttft": answer.ttft, "mode": answer.mode, "usage": answer.usage,
                             "times": answer.token_times, "fallback": answer.fallback}
            results.append(row)
    return summarise_ttft(results, tokens)


def summarise_ttft(results: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    steps = []
    for row in results:
        times = row["direct"]["times"]
        if len(times) >= 3:
            steps.append((times[-1] - times[0]) / (len(times) - 1))
    step = statistics.median(steps) if steps else None
    figures: dict[str, Any] = {"prompts": len(results), "probe_tokens": tokens,
                               "decode_step_s": step}
    print(f"\ntime to first token, {len(results)} prompts, streamed one at a time "
          f"(decode step {fmt(step)} s, N = {tokens})")
    for path in ("direct", "rules", "spec", "probe"):
        values = [r[path]["ttft"] for r in results if r[path]["ttft"] is not None]
        figures[f"ttft_{path}_median"] = statistics.median(values) if values else None
        print(f"  {path:>6}: median {fmt(figures[f'ttft_{path}_median'])} s")
    for path in ("spec", "probe"):
        for mode in ("FLUIDO", "ANALITICO"):
            diffs = [r[path]["ttft"] - r["rules"]["ttft"] for r in results
                     if r[path]["mode"] == mode and r[path]["ttft"] and r["rules"]["ttft"]]
            vs_direct = [r[path]["ttft"] - r["direct"]["ttft"] for r in results
                         if r[path]["mode"] == mode and r[path]["ttft"] and r["direct"]["ttft"]]
            key = f"added_{path}_{mode.lower()}"
            figures[key] = statistics.median(diffs) if diffs else None
            figures[key + "_vs_direct"] = statistics.median(vs_direct) if vs_direct else None
            figures[key + "_count"] = len(diffs)
            print(f"  {path:>6} {mode:>9}: n={len(diffs):3d}  added over rules "
                  f"{fmt(figures[key])} s, over direct {fmt(figures[key + '_vs_direct'])} s")
    if step is not None and figures["added_spec_fluido"] is not None:
        bound = (tokens - 1) * step
        figures["fluido_bound_s"] = bound
        print(f"  speculative FLUIDO: added {fmt(figures['added_spec_fluido'])} s vs bound "
              f"(N-1) steps = {bound:.3f} s")
    restarts = []
    for r in results:
        spec, direct = r["spec"], r["direct"]
        if spec["mode"] != "ANALITICO" or not spec["usage"] or not direct["usage"]:
            continue
        prompt_tokens = spec["usage"].get("prompt_tokens", 0)
        cached = (spec["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        original = direct["usage"].get("prompt_tokens", 0)
        instruction = prompt_tokens - original
        restarts.append({"prompt_tokens": prompt_tokens, "cached": cached,
                         "new": prompt_tokens - cached, "instruction": instruction,
                         "bound": instruction + 0.1 * original})
    if restarts:
        within = sum(1 for x in restarts if x["new"] <= x["bound"])
        figures["restarts"] = len(restarts)
        figures["restart_new_prefill_median"] = statistics.median(x["new"] for x in restarts)
        figures["restart_cached_median"] = statistics.median(x["cached"] for x in restarts)
        figures["restart_prompt_median"] = statistics.median(x["prompt_tokens"] for x in restarts)
        figures["restart_within_bound"] = within
        print(f"  ANALITICO restarts: {len(restarts)}; prompt {figures['restart_prompt_median']}"
              f" tokens, cached {figures['restart_cached_median']}, new prefill "
              f"{figures['restart_new_prefill_median']} (median); within instruction + 10% of "
              f"the prompt: {within}/{len(restarts)}")
    probe_restarts = [r["probe"]["usage"] for r in results
                      if r["probe"]["mode"] == "ANALITICO" and r["probe"]["usage"]]
    if probe_restarts:
        new = [u.get("prompt_tokens", 0)
               - (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
               for u in probe_restarts]
        figures["probe_analitico_new_prefill_median"] = statistics.median(new)
        print(f"  separate probe, ANALITICO: new prefill {statistics.median(new)} tokens "
              f"(median, system-prompt placement)")
    figures["rows"] = results
    return figures


# ---- phase: overload ----------------------------------------------------------------

DOCUMENT = " ".join(
    f"Section {i}: the quarterly report lists revenue, costs and staffing for region {i}, "
    f"with notes on suppliers, delays and the budget for the next period." for i in range(12)
)


async def drive_step(url: str, base: float, step: float, after: float, low: int,
                     high: int) -> list[dict[str, Any]]:  # fmt: skip
    """``low`` clients for ``base`` s, ``high`` for ``step`` s, ``low`` for ``after`` s."""
    started = time.perf_counter()
    end = base + step + after
    rows: list[dict[str, Any]] = []

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        n = 0
        while True:
            now = time.perf_counter() - started
            active = low if (now < base or now >= base + step) else high
            if now >= end:
                return
            if index >= active:
                await asyncio.sleep(0.2)
                continue
            n += 1
            question = ["Solve 17 x 23 step by step.", "What is the total of the costs?",
                        "Summarise section 3.", "¿Cuál es el presupuesto de la región 5?"][
                (index + n) % 4]
            # A document of its own per request (as chats with attachments are): nothing of it
            # is in the engine's cache, so every prefill of it is paid in full.
            messages = [{"role": "user",
                         "content": f"Report {index}.{n}. {DOCUMENT}\n\n{question}"}]
            t0 = time.perf_counter() - started
            try:
                answer = await stream_chat(session, url, messages, 24)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                continue
            rows.append({"t": t0, "ttft": answer.ttft, "mode": answer.mode,
                         "fallback": answer.fallback, "status": answer.status})

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(i, session) for i in range(high)))
    return rows


async def phase_overload(stack: Stack, ports: list[int], target: float, base: float,
                         step: float, after: float, high: int) -> dict[str, Any]:  # fmt: skip
    # The set point: twice the unloaded time to first token of one such request, measured now
    # (a busy shared CPU has no fixed "fast").
    async with aiohttp.ClientSession() as session:
        alone = []
        for i in range(3):
            messages = [{"role": "user", "content": f"{DOCUMENT}\n\nSummarise section {i}."}]
            answer = await stream_chat(session, stack.engine_url, messages, 4)
            if answer.ttft is not None:
                alone.append(answer.ttft)
    set_point = max(1.0, 2.0 * statistics.median(alone))
    figures: dict[str, Any] = {"target_rate": target, "base_s": base, "step_s": step,
                               "after_s": after, "clients_in_step": high,
                               "ttft_alone_s": alone, "ttft_set_point_s": set_point}
    # Care that costs: a separate probe per request, and ANALITICO's instruction in the
    # system prompt, which makes the engine prefill the document a second time.
    settings = dict(LKN_DECISION_STRATEGY="entropy", LKN_SPECULATIVE="false",
                    LKN_TARGET_RATE=str(target), LKN_SHED_TTFT=f"{set_point:.2f}",
                    LKN_PROBE_TIMEOUT="60")
    for index, shed in enumerate(("false", "true")):
        url = await stack.gateway(f"overload-{shed}", ports[index], LKN_SHED=shed, **settings)
        say(f"overload step, shedding {shed}")
        rows = await drive_step(url, base, step, after, 1, high)
        in_step = [r["ttft"] for r in rows if base <= r["t"] < base + step and r["ttft"]]
        care = [r for r in rows if r["t"] >= base + step]
        recovered = None
        for i in range(len(care)):
            window = care[i:i + 6]
            if len(window) == 6 and not any(r["fallback"].startswith("shed") for r in window):
                recovered = window[0]["t"] - (base + step)
                break
        key = "on" if shed == "true" else "off"
        figures[key] = {
            "requests": len(rows), "ttft_p95_step": pct(in_step, 0.95),
            "ttft_p50_step": pct(in_step, 0.5),
            "care_rate_step": _rate([r for r in rows if base <= r["t"] < base + step]),
            "care_rate_after": _rate(care), "shed_in_step": sum(
                1 for r in rows if r["fallback"].startswith("shed")),
            "recovered_after_s": recovered, "errors": sum(r["status"] != 200 for r in rows),
        }
        stack.gateways[-1].terminate()
        stack.gateways[-1].wait(10)
        await asyncio.sleep(3.0)
    on, off = figures["on"], figures["off"]
    if on["ttft_p95_step"] and off["ttft_p95_step"]:
        figures["p95_reduction"] = 1.0 - on["ttft_p95_step"] / off["ttft_p95_step"]
    print(f"\noverload step ({high} clients for {step:.0f} s, a document per request, "
          f"entropy with separate probes, target rate {target}, TTFT set point "
          f"{set_point:.2f} s)")
    for key in ("off", "on"):
        f = figures[key]
        print(f"  shedding {key:>3}: {f['requests']} requests, TTFT p50/p95 in the step "
              f"{fmt(f['ttft_p50_step'])}/{fmt(f['ttft_p95_step'])} s, care rate in the step "
              f"{fmt(f['care_rate_step'], 2)}, after {fmt(f['care_rate_after'], 2)}, shed "
              f"{f['shed_in_step']}, unshed again {fmt(f['recovered_after_s'], 1)} s after")
    print(f"  p95 reduction with shedding: {fmt(figures.get('p95_reduction'), 2)}")
    return figures


def _rate(rows: list[dict[str, Any]]) -> float | None:
    return sum(r["mode"] == "ANALITICO" for r in rows) / len(rows) if rows else None


# ---- main ---------------------------------------------------------------------------


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default="auroc,rate,ttft,overload")
    parser.add_argument("--engine-url", help="a running engine (else one is started)")
    parser.add_argument("--engine-port", type=int, default=0)
    parser.add_argument("--gateway-ports", default="", help="comma-separated, else free ports")
    parser.add_argument("--items", type=Path, default=ROOT / "lkn/eval/data/items.jsonl")
    parser.add_argument("--per-language", type=int, default=40)
    parser.add_argument("--answer-tokens", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--records", type=Path, help="reuse answers from an earlier auroc run")
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--probe-tokens", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threshold", type=float, default=0.25,
                        help="LKN_ENTROPY_THRESHOLD of the entropy gateways in the ttft phase")
    parser.add_argument("--ttft-tokens", type=int, default=4)
    parser.add_argument("--overload", default="20,45,60,4", help="base,step,after s,clients")
    parser.add_argument("--target-rate", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("bench_decisions.json"))
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="lkn-bench-decisions-"))
    stack = Stack(workdir)
    report: dict[str, Any] = {}
    ports = [int(p) for p in args.gateway_ports.split(",") if p] or [_free_port() for _ in "abc"]
    try:
        if args.engine_url:
            stack.engine_url = args.engine_url.rstrip("/")
        elif phases & {"auroc", "ttft", "overload"} or not args.records:
            stack.start_engine(args.engine_port or _free_port())
        if stack.engine_url:
            async with aiohttp.ClientSession() as session:
                async with session.get(stack.engine_url + "/v1/models") as response:
                    MODEL[0] = (await response.json())["data"][0]["id"]
        records: list[dict[str, Any]] = []
        if args.records and args.records.exists():
            records = json.loads(args.records.read_text())
        elif phases & {"auroc", "rate"}:
            items = load_items(args.items, args.per_language)
            say(f"answering {len(items)} questions with logprobs")
            records = await answer_items(stack.engine_url, items, args.answer_tokens,
                                         args.concurrency)
            (workdir / "records.json").write_text(json.dumps(records))
            say(f"answers kept in {workdir / 'records.json'}")
        if "auroc" in phases:
            report["auroc"] = report_auroc(records)
        if "rate" in phases:
            report["rate"] = report_rate(records, args.stream, args.probe_tokens)
        if "ttft" in phases:
            report["ttft"] = await phase_ttft(stack, ports, args.probe_tokens, args.rounds,
                                              args.warmup, args.threshold, args.ttft_tokens)
            for proc in stack.gateways:
                proc.terminate()
        if "overload" in phases:
            base, step, after, clients = (float(x) for x in args.overload.split(","))
            report["overload"] = await phase_overload(stack, ports, args.target_rate, base,
                                                      step, after, int(clients))
    finally:
        stack.stop()
    args.out.write_text(json.dumps(report, indent=1, default=str))
    say(f"figures written to {args.out}")
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
