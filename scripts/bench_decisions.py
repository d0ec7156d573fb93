"""Benchmark the decisions against one live engine, in one run: what speculative FLUIDO
costs, what the entropy score tells, whether the homeostat holds its set points, and what it
saves under a load step. Prints each figure with its target, PASS or FAIL.

    PYTHONPATH=. python scripts/bench_decisions.py [--phases auroc,rate,ttft,overload]

The engine is the project's own (``scripts/start_engine.sh``; on a machine without a GPU
that is SGLang on the CPU with SmolLM2-135M-Instruct), started with ``--enable-cache-report``
(``--engine-port``, else a free port) unless ``--engine-url`` names a running one. Each
gateway runs in its own process (``python -m lkn serve``, default settings apart from ports,
engine and the settings under test; logging on). Phases:

* ``auroc``: checkable questions of the evaluation set, answered greedily by the engine with
  its top-10 logprobs; the answers graded; AUROC of each score feature for wrong answers
  within each language (bootstrap 95 % intervals), over the first 1/4/8 answer tokens and
  the whole answer, with and without skipping tokens that carry no answer.
* ``rate``: the homeostat (pure, injected clock) on a few thousand requests replayed from
  the measured scores, with a drifting mix of languages and a drifting score shift; the
  realised ANALITICO rate against the set point, and on prompts the warm-up never saw.
* ``ttft``: direct engine vs gateways (rules; entropy with the generation as its probe,
  N = 1 and N = 4 held tokens; entropy with a separate probe), streamed, one at a time,
  interleaved, cold cache each; added time to first token over rules split by FLUIDO and
  ANALITICO; prefill tokens (new vs cached, from the engine's usage) of restarts.
* ``restart``: the default path's ANALITICO restart (entropy, ``LKN_POLICY=none``, so the
  instruction of ``LKN_INTERVENTION``; long chats without a system message, cold cache
  each): the restart's prompt tokens, cached and new (``--phases restart``).
* ``overload``: a load step of requests with a short document each, where care (the
  consistency vote) saturates the engine, with the homeostat's shedding off, then on: time
  to first token p95 during the step, and when the care rate is back at its set point
  after it.

Writes every figure as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
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
from lkn.engines.rebuild import token_texts  # noqa: E402
from lkn.values import GenerateRequest, Route  # noqa: E402
from scripts.lib.benchkit import (  # noqa: E402
    Gateway, StreamedAnswer, free_port, launch_gateway, percentile,
)

TIMEOUT = aiohttp.ClientTimeout(total=300)
#: The engine's served model name (the gateway routes by it), learnt at start.
MODEL = ["default"]
#: The top-K logprobs the held generation asks for (LKN_PROBE_TOP_K's default).
PROBE_TOP_K = DecisionSettings().probe_top_k


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
    """The nearest-rank ``q`` quantile; None when there are no values."""
    return percentile(values, q, "nearest_rank") if values else None


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---- processes ----------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    engine_url: str = ""
    started_engine: bool = False
    gateways: dict[str, Gateway] = field(default_factory=dict)
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

    def stop_gateway(self, name: str) -> None:
        self.gateways.pop(name).stop(grace=10.0)

    def stop(self) -> None:
        for name in list(self.gateways):
            self.stop_gateway(name)
        if self.started_engine:
            port = self.engine_url.rsplit(":", 1)[1]
            subprocess.run(["bash", "scripts/stop_engine.sh"], cwd=ROOT,
                           env=self.engine_env(int(port)), check=False)

    async def gateway(self, name: str, port: int, **settings: str) -> str:
        gateway = launch_gateway(f"gateway-{name}", self.engine_url, self.workdir,
                                 env_file=self.env_file, settings=settings, port=port,
                                 grpc_port=None, append=True)  # fmt: skip
        self.gateways[name] = gateway
        if await gateway.wait_ready_async(timeout=120.0, interval=0.5):
            return gateway.url
        state = "not ready" if gateway.child.alive() else "exited"
        raise RuntimeError(f"gateway {name} {state}; see {gateway.child.log_path}")


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
    intervention: str = ""


async def stream_chat(session: aiohttp.ClientSession, url: str, messages: list[Any],
                      max_tokens: int, headers: dict[str, str] | None = None,
                      greedy: bool = True, extra: dict[str, Any] | None = None,
                      ) -> Answer:  # fmt: skip
    """One streamed chat answer; ``greedy=False`` sends no sampling field (Open WebUI's shape);
    ``extra``: more body fields."""
    body = {"model": MODEL[0], "messages": messages, "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True},
            **({"temperature": 0} if greedy else {}), **(extra or {})}
    answer = StreamedAnswer()
    async with session.post(url + "/v1/chat/completions", json=body, timeout=TIMEOUT,
                            headers=headers or {}) as resp:  # fmt: skip
        mode = resp.headers.get("X-LKN-Mode", "-")
        fallback = resp.headers.get("X-LKN-Fallback", "")
        intervention = resp.headers.get("X-LKN-Intervention", "")
        if resp.status != 200:
            await resp.read()
            return Answer(None, mode, fallback, "", {}, [], resp.status, intervention)
        async for raw in resp.content:
            answer.feed(raw)
    return Answer(answer.ttft, mode, fallback, answer.text, answer.usage, answer.times, 200,
                  intervention)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


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
    from lkn.values import TopToken

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
#: Chat turns with some context above the question (as a conversation has), so that the
#: prefill a restart reuses is not only a short question.
NOTES = [
    ("The library opens at nine and closes at six on weekdays; on Saturdays it opens at ten "
     "and closes at two, and it is closed on Sundays and public holidays.",
     ["When does the library close on Saturdays?", "Is the library open on Sundays?",
      "¿A qué hora abre la biblioteca entre semana?"]),
    ("Maria planted tomatoes, beans and peppers in April. The beans came up first, the "
     "tomatoes needed more water in July, and a late frost damaged half of the peppers.",
     ["Which plants came up first?", "What damaged the peppers?",
      "¿Qué plantó María en abril?"]),
    ("The train to the coast leaves platform four every hour at quarter past. The trip "
     "takes ninety minutes, and bicycles are allowed except between seven and nine.",
     ["How long is the trip to the coast?", "From which platform does the train leave?",
      "¿Se pueden llevar bicicletas a las ocho?"]),
    ("Our team meets on Tuesdays. Ana keeps the notes, Luis books the room, and whoever "
     "arrives last brings coffee for everybody the following week.",
     ["Who books the room?", "What does the last person to arrive bring?",
      "¿Quién toma las notas?"]),
    ("The museum has three floors: paintings on the first, sculpture on the second and a "
     "cafe with a terrace on the third. Tickets are half price after four.",
     ["Where is the cafe?", "What is on the second floor?",
      "¿Cuándo cuestan menos las entradas?"]),
    ("Lena's bakery sells rye bread on Mondays, croissants every morning and a plum cake "
     "only in September, when the plums from her uncle's orchard are ripe.",
     ["When is the plum cake sold?", "Where do the plums come from?",
      "¿Qué pan se vende los lunes?"]),
]
SYSTEM = "Answer in one short sentence."


def ttft_conversations() -> list[list[dict[str, str]]]:
    out = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]
           for p in TTFT_PROMPTS]
    for note, questions in NOTES:
        out += [[{"role": "system", "content": SYSTEM},
                 {"role": "user", "content": f"{note}\n\n{q}"}] for q in questions]
    return out


#: The gateways of the ttft phase: LKN_PROBE_TOKENS and whether the generation is the probe.
TTFT_PATHS = {"spec": (1, True), "spec4": (4, True), "specmsg": (1, True), "probe": (1, False)}
#: Settings of their own: ``specmsg`` restarts with the seed's instruction as a user message
#: after the conversation (the others with the default, the start of the answer).
TTFT_SETTINGS = {"specmsg": {"LKN_RESTART_PLACEMENT": "message"}}
#: The speculative paths whose ANALITICO restarts are counted (prefill new vs cached).
RESTART_PATHS = {"spec": "answer (default)", "specmsg": "message"}


async def phase_ttft(stack: Stack, ports: list[int], rounds: int, warmup: int,
                     threshold: float, max_tokens: int) -> dict[str, Any]:  # fmt: skip
    # LKN_POLICY=none: the policy shipped for this model gives every request careful
    # sampling (which changes nothing for these greedy requests), so there would be no
    # FLUIDO/ANALITICO outcome to tell apart; with none, ANALITICO is the instruction.
    gateways = {"rules": await stack.gateway("rules", ports[0], LKN_POLICY="none")}
    for index, (name, (tokens, speculative)) in enumerate(TTFT_PATHS.items()):
        # A generous probe budget: the first token must not be cut off on a busy CPU.
        gateways[name] = await stack.gateway(
            name, ports[1 + index], LKN_POLICY="none", LKN_DECISION_STRATEGY="entropy",
            LKN_PROBE_TOKENS=str(tokens), LKN_ENTROPY_THRESHOLD=str(threshold),
            LKN_PROBE_TIMEOUT="60", LKN_SPECULATIVE=str(speculative).lower(),
            **TTFT_SETTINGS.get(name, {}))
    conversations = [c for _ in range(rounds) for c in ttft_conversations()]
    # direct_lp: straight to the engine, asking the logprobs the held generation asks for;
    # against direct, it is what the engine itself spends on them.
    paths = ["direct", "direct_lp", "rules", *TTFT_PATHS]
    asked = {"direct_lp": {"logprobs": True, "top_logprobs": PROBE_TOP_K}}
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        say(f"warming the entropy gateways' score ranks ({warmup} requests each); {load()}")
        # The same conversations as measured, system message included: the ranks are of
        # the scores these requests get (without it the first answer token differs, and the
        # threshold's rate with it).
        plain = ttft_conversations()
        for i in range(warmup):
            for name in TTFT_PATHS:
                await stream_chat(session, gateways[name], plain[i % len(plain)], 1)
        say(f"measuring {len(conversations)} conversations x {len(paths)} paths, interleaved")
        for i, messages in enumerate(conversations):
            order = list(paths)
            random.Random(i).shuffle(order)
            row: dict[str, Any] = {"prompt": messages[-1]["content"]}
            for path in order:
                url = stack.engine_url if path.startswith("direct") else gateways[path]
                # Every path starts from a cold cache: each pays the prompt's prefill itself
                # (what a restart then reuses is what its own held request prefilled).
                async with session.post(stack.engine_url + "/flush_cache?timeout=30") as r:
                    await r.read()
                answer = await stream_chat(session, url, messages, max_tokens,
                                           extra=asked.get(path))
                row[path] = {"ttft": answer.ttft, "mode": answer.mode, "usage": answer.usage,
                             "times": answer.token_times, "fallback": answer.fallback}
            results.append(row)
    for name in gateways:
        stack.stop_gateway(name)
    return summarise_ttft(results)


def median_ci(values: Sequence[float], rounds: int = 2000,
              seed: int = 1) -> tuple[float | None, float | None]:  # fmt: skip
    """A bootstrap 95 % interval of the median."""
    if len(values) < 2:
        return None, None
    rnd = random.Random(seed)
    medians = sorted(statistics.median(rnd.choices(values, k=len(values)))
                     for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def decode_step(results: list[dict[str, Any]], path: str) -> float | None:
    """The median time per decode step of ``path``'s answers."""
    steps = []
    for row in results:
        times = row.get(path, {}).get("times") or []
        if len(times) >= 3:
            steps.append((times[-1] - times[0]) / (len(times) - 1))
    return statistics.median(steps) if steps else None


def summarise_ttft(results: list[dict[str, Any]]) -> dict[str, Any]:
    step = decode_step(results, "direct")
    figures: dict[str, Any] = {"prompts": len(results), "decode_step_s": step,
                               "decode_step_logprobs_s": decode_step(results, "direct_lp")}
    print(f"\ntime to first token, {len(results)} conversations, streamed one at a time, cold "
          f"cache for every path (decode step {fmt(step)} s, median of the direct answers)")
    for path in ("direct", "direct_lp", "rules", *TTFT_PATHS):
        values = [r[path]["ttft"] for r in results if r[path]["ttft"] is not None]
        figures[f"ttft_{path}_median"] = statistics.median(values) if values else None
        print(f"  {path:>9}: median {fmt(figures[f'ttft_{path}_median'])} s")
    # What the engine spends on the logprobs alone (paired, every conversation): the part of
    # the held generation's added time that no gateway can take back.
    costs = [r["direct_lp"]["ttft"] - r["direct"]["ttft"] for r in results
             if r["direct_lp"]["ttft"] and r["direct"]["ttft"]]
    figures["engine_logprob_cost"] = statistics.median(costs) if costs else None
    figures["engine_logprob_cost_ci"] = median_ci(costs)
    figures["engine_logprob_cost_count"] = len(costs)
    low, high = figures["engine_logprob_cost_ci"]
    print(f"  the engine's own cost of top-{PROBE_TOP_K} logprobs on the first token (direct "
          f"with vs without, n={len(costs)}): median {fmt(figures['engine_logprob_cost'])} s "
          f"[{fmt(low)}, {fmt(high)}]; decode step with them "
          f"{fmt(figures['decode_step_logprobs_s'])} s")
    for path, (tokens, _) in TTFT_PATHS.items():
        for mode in ("FLUIDO", "ANALITICO"):
            if path == "specmsg" and mode == "FLUIDO":
                continue  # the same FLUIDO path as spec
            # Paired on the same conversation, where the rules said FLUIDO too (the rules'
            # own ANALITICO prefills an instruction, which is not what is compared here).
            diffs = [r[path]["ttft"] - r["rules"]["ttft"] for r in results
                     if r[path]["mode"] == mode and r["rules"]["mode"] == "FLUIDO"
                     and r[path]["ttft"] and r["rules"]["ttft"]]
            key = f"added_{path}_{mode.lower()}"
            figures[key] = statistics.median(diffs) if diffs else None
            figures[key + "_ci"] = median_ci(diffs)
            figures[key + "_count"] = len(diffs)
            low, high = figures[key + "_ci"]
            print(f"  {path:>6} {mode:>9}: n={len(diffs):3d}  added over rules: median "
                  f"{fmt(figures[key])} s [{fmt(low)}, {fmt(high)}]")
        if step is not None:
            figures[f"{path}_fluido_bound_s"] = (tokens - 1) * step
        # What holding N tokens costs at the engine alone: its logprob cost on the first
        # token and N - 1 of its decode steps with logprobs (no gateway in it).
        lp_step, lp_cost = figures["decode_step_logprobs_s"], figures["engine_logprob_cost"]
        if lp_step is not None and lp_cost is not None:
            figures[f"{path}_engine_only_s"] = lp_cost + (tokens - 1) * lp_step
    for path, placement in RESTART_PATHS.items():
        # The intervention's own tokens: what it adds to the prompt (restart's prompt tokens
        # minus the original's, both from the engine's usage); new: the restart's prompt
        # tokens the engine did not find in its cache (SGLang's cached_tokens).
        restarts = []
        for r in results:
            spec, direct = r[path], r["direct"]
            if spec["mode"] != "ANALITICO" or not spec["usage"] or not direct["usage"]:
                continue
            prompt_tokens = spec["usage"].get("prompt_tokens", 0)
            cached = (spec["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            original = direct["usage"].get("prompt_tokens", 0)
            restarts.append({"prompt": original, "restart_prompt": prompt_tokens,
                             "cached": cached, "new": prompt_tokens - cached,
                             "instruction": prompt_tokens - original,
                             "bound": prompt_tokens - original + 0.1 * original})
        key = "restarts" if path == "spec" else f"restarts_{path}"
        figures[key] = restarts
        if not restarts:
            continue
        within = sum(1 for x in restarts if x["new"] <= x["bound"])
        extra = sorted({x["new"] - x["instruction"] for x in restarts})
        figures[f"{key}_within_bound"] = within
        figures[f"{key}_new_beyond_instruction"] = extra
        print(f"  ANALITICO restarts ({path}, N = 1, placement {placement}): {len(restarts)}; "
              f"prompts {min(x['prompt'] for x in restarts)}-"
              f"{max(x['prompt'] for x in restarts)} tokens; intervention "
              f"{sorted({x['instruction'] for x in restarts})} tokens; new prefill - "
              f"intervention tokens: {extra}; within intervention + 10 % of the prompt: "
              f"{within}/{len(restarts)}")
        for x in sorted(restarts, key=lambda x: x["prompt"]):
            print(f"    prompt {x['prompt']:>4}  restart {x['restart_prompt']:>4}  cached "
                  f"{x['cached']:>4}  new {x['new']:>3}  bound {x['bound']:.1f}")
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

#: Sections of the overload phase's documents (``--doc-sections``). Few, so that the load
#: step's FLUIDO requests alone stay within what the engine serves and what saturates it is
#: the care (with 8 sections, ~280 tokens, 6 clients of FLUIDO requests alone saturated the
#: bf16 engine on a busy 2-core machine: 16 s to the first token; evidence log).
DOC_SECTIONS = [3]


def document(sections: int) -> str:
    return " ".join(
        f"Section {i}: the quarterly report lists revenue, costs and staffing for region {i}, "
        f"with notes on suppliers, delays and the budget for the next period."
        for i in range(sections))
#: Questions whose answers run long, so that care (K answers of up to --care-tokens each,
#: sent after the vote) costs many decode steps, while a FLUIDO answer streams from its
#: first token.
QUESTIONS = ["Summarise every section of the report in detail.",
             "Explain, section by section, what the report says about suppliers and delays.",
             "Describe the budget plans of each region in detail.",
             "Resume con detalle cada sección del informe.",
             "Explica, sección por sección, qué dice el informe sobre los proveedores.",
             "Describe en detalle el personal y los costes de cada región."]


def document_request(tag: str, n: int) -> list[dict[str, str]]:
    # A document of its own per request (as chats with attachments are): nothing of it is in
    # the engine's cache, so every prefill of it is paid in full.
    return [{"role": "user",
             "content": f"Report {tag}. {document(DOC_SECTIONS[0])}\n\n"
                        f"{QUESTIONS[n % len(QUESTIONS)]}"}]


async def phase_restart(stack: Stack, port: int, prompts: int,
                        max_tokens: int) -> dict[str, Any]:  # fmt: skip
    """The default path's restart: entropy strategy, ``LKN_POLICY=none`` (ANALITICO gets
    ``LKN_INTERVENTION``: the seed's instruction in the system prompt), every request
    ANALITICO (threshold 0 on raw scores), long chats without a system message (the model's
    own default system prompt is in force), each from a cold cache: how much of the
    restart's prompt the engine prefilled again (SGLang's cached_tokens)."""
    url = await stack.gateway("restart", port, LKN_POLICY="none", LKN_DECISION_STRATEGY="entropy",
                              LKN_SCORE_NORMALISE="false", LKN_ENTROPY_THRESHOLD="0",
                              LKN_PROBE_TIMEOUT="60")  # fmt: skip
    rows: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        for n in range(prompts):
            messages = [{"role": "user", "content": f"Report r{n}. {document(20)}\n\n"
                                                    f"{QUESTIONS[n % len(QUESTIONS)]}"}]
            direct = await stream_chat(session, stack.engine_url, messages, 1)
            async with session.post(stack.engine_url + "/flush_cache?timeout=30") as r:
                await r.read()
            answer = await stream_chat(session, url, messages, max_tokens)
            usage = answer.usage or {}
            prompt_tokens = usage.get("prompt_tokens", 0)
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            original = (direct.usage or {}).get("prompt_tokens", 0)
            rows.append({"mode": answer.mode, "intervention": answer.intervention,
                         "prompt": original, "restart_prompt": prompt_tokens, "cached": cached,
                         "new": prompt_tokens - cached, "instruction": prompt_tokens - original})
    stack.stop_gateway("restart")
    restarted = [r for r in rows if r["mode"] == "ANALITICO"]
    within = sum(1 for r in restarted if r["new"] <= r["instruction"] + 0.1 * r["prompt"])
    print(f"\nrestart on the default path (entropy, LKN_POLICY=none, no system message): "
          f"{len(restarted)} of {len(rows)} ANALITICO; new prefill within the instruction + 10 % "
          f"of the prompt: {within}/{len(restarted)}")
    for r in rows:
        print(f"    {r['mode']:>9} prompt {r['prompt']:>4}  restart {r['restart_prompt']:>4}  "
              f"cached {r['cached']:>4}  new {r['new']:>3}  instruction {r['instruction']:>3}")
    return {"rows": rows, "analitico": len(restarted), "within_bound": within}


async def drive_step(url: str, base: float, step: float, after: float, low: int,
                     high: int, tag: str, max_tokens: int = 24,
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``low`` clients for ``base`` s, ``high`` for ``step`` s, ``low`` for ``after`` s; the
    gateway's homeostat read from ``/ready`` every second meanwhile."""
    started = time.perf_counter()
    end = base + step + after
    rows: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []

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
            t0 = time.perf_counter() - started
            try:
                answer = await stream_chat(session, url, document_request(f"{tag}.{index}.{n}",
                                                                          n + index),
                                             max_tokens, greedy=False)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                rows.append({"t": t0, "ttft": None, "mode": "-", "fallback": "", "status": 0,
                             "intervention": ""})
                continue
            rows.append({"t": t0, "ttft": answer.ttft, "mode": answer.mode,
                         "fallback": answer.fallback, "status": answer.status,
                         "intervention": answer.intervention})

    async def watch(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() - started < end:
            try:
                async with session.get(url + "/ready") as r:
                    state = (await r.json())["homeostat"]
                states.append({"t": time.perf_counter() - started, "shed": state["shed_level"],
                               "pressure": state["load"]["pressure"],
                               "threshold": state["threshold"]})
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
                pass
            await asyncio.sleep(1.0)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(watch(session), *(client(i, session) for i in range(high)))
    return rows, states


def wilson(hits: int, n: int) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise_step(rows: list[dict[str, Any]], states: list[dict[str, Any]], base: float,
                   step: float, target: float) -> dict[str, Any]:  # fmt: skip
    end = base + step
    in_step = [r["ttft"] for r in rows if base <= r["t"] < end and r["ttft"]]
    # Recovered: from the first reading after the step from which the gateway stayed unshed.
    recovered_at = None
    for state in states:
        if state["t"] < end:
            continue
        if state["shed"] != "none":
            recovered_at = None
        elif recovered_at is None:
            recovered_at = state["t"]
    after = [r for r in rows if recovered_at is not None and r["t"] >= recovered_at]
    care = sum(r["mode"] == "ANALITICO" for r in after)
    low, high = wilson(care, len(after))
    return {
        "requests": len(rows), "in_step": len(in_step),
        "ttft_p95_step": pct(in_step, 0.95), "ttft_p50_step": pct(in_step, 0.5),
        "ttft_p95_base": pct([r["ttft"] for r in rows if r["t"] < base and r["ttft"]], 0.95),
        "care_rate_base": _rate([r for r in rows if r["t"] < base]),
        "care_rate_step": _rate([r for r in rows if base <= r["t"] < end]),
        "shed_in_step": sum(1 for r in rows if r["fallback"].startswith("shed")),
        "interventions_in_step": _count(r["intervention"] for r in rows if base <= r["t"] < end),
        "shed_levels_seen": sorted({s["shed"] for s in states}),
        "recovered_after_s": None if recovered_at is None else max(0.0, recovered_at - end),
        "care_rate_after_recovery": care / len(after) if after else None,
        "care_rate_after_ci": [low, high], "after_requests": len(after),
        "errors": sum(r["status"] != 200 for r in rows), "states": states,
        "rows": rows,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value or "-"] = out.get(value or "-", 0) + 1
    return out


async def phase_overload(stack: Stack, ports: list[int], target: float, base: float,
                         step: float, after: float, low: int, high: int, care: str,
                         care_tokens: int) -> dict[str, Any]:  # fmt: skip
    # Care that costs: the consistency vote (K answers of up to LKN_CONSISTENCY_MAX_TOKENS
    # each, streamed only once all are in) for every ANALITICO decision of the entropy
    # strategy, the rate held at `target`. Shed to the cheaper level, it is one answer with
    # the instruction after the conversation.
    # The clients send no sampling field, as Open WebUI does: a client's temperature 0 would
    # make the vote's K answers one greedy answer, which the gateway does not vote on.
    # LKN_SSE_KEEPALIVE: a vote can take longer than the 15 s keep-alive, which sends the
    # headers before the decision is known; the benchmark reads each answer's mode from them.
    settings = dict(LKN_DECISION_STRATEGY="entropy", LKN_POLICY="none", LKN_INTERVENTION=care,
                    LKN_CONSISTENCY_MAX_TOKENS=str(care_tokens), LKN_TARGET_RATE=str(target),
                    LKN_ENTROPY_THRESHOLD="0.5", LKN_PROBE_TIMEOUT="60",
                    LKN_SSE_KEEPALIVE="240", LKN_HEALTH_INTERVAL="1")
    # (LKN_HEALTH_INTERVAL 1: the engine's queue, which the shedder reads, every second.)
    off = await stack.gateway("overload-off", ports[0], LKN_SHED="false", **settings)
    # The set point: twice the time to first token of care answers at the base load (the
    # `low` clients all asking for care at once), measured now: an operator sets it to the
    # wait they accept, and a busy shared CPU has no fixed "fast". (Measured one at a time,
    # it was below the base load's own wait, so the gateway shed care before the step and
    # never restored it.)
    async with aiohttp.ClientSession() as session:
        alone = []
        for i in range(2):
            answers = await asyncio.gather(*(
                stream_chat(session, off, document_request(f"alone.{i}.{j}", i + j),
                            care_tokens, headers={"X-LKN-Intervention": care}, greedy=False)
                for j in range(low)))
            alone += [a.ttft for a in answers if a.ttft is not None]
    set_point = 2.0 * statistics.median(alone)
    figures: dict[str, Any] = {"target_rate": target, "base_s": base, "step_s": step,
                               "after_s": after, "clients": [low, high], "care": care,
                               "care_tokens": care_tokens, "doc_sections": DOC_SECTIONS[0],
                               "ttft_care_alone_s": alone,
                               "ttft_set_point_s": set_point}
    # And the in-flight set point: the load the engine serves with care at its usual wait
    # (the clients before the step) plus one; more than that in flight is FLUIDO at once,
    # before any slow first token has been seen.
    in_flight = low + 1
    figures["in_flight_set_point"] = in_flight
    say(f"care at the base load ({low} at once): TTFT {[round(a, 2) for a in alone]} s; "
        f"set point {set_point:.2f} s, {in_flight} in flight")
    on = await stack.gateway("overload-on", ports[1], LKN_SHED="true",
                             LKN_SHED_TTFT=f"{set_point:.2f}",
                             LKN_SHED_IN_FLIGHT=str(in_flight), **settings)
    for key, url in (("off", off), ("on", on)):
        # Warm the score ranks with separate probes (no generation): 40 per language, past
        # the 30 a language's scores are taken raw for, so that what is measured is ranked.
        async with aiohttp.ClientSession() as session:
            for i in range(80):
                body = {"model": MODEL[0], "max_tokens": 24,
                        "messages": document_request(f"warm.{key}.{i}", i)}
                async with session.post(url + "/v1/lkn/probe", json=body) as r:
                    await r.read()
        say(f"overload step, homeostat shedding {key}; {load()}")
        # The clients ask for care_tokens: a care answer (K of them, sent after the vote)
        # is that long, a FLUIDO one streams from its first token.
        rows, states = await drive_step(url, base, step, after, low, high, key, care_tokens)
        figures[key] = summarise_step(rows, states, base, step, target)
        figures[key]["load"] = load()
        stack.stop_gateway(f"overload-{key}")
        await asyncio.sleep(3.0)
    on_f, off_f = figures["on"], figures["off"]
    if on_f["ttft_p95_step"] and off_f["ttft_p95_step"]:
        figures["p95_reduction"] = 1.0 - on_f["ttft_p95_step"] / off_f["ttft_p95_step"]
    print(f"\noverload step ({low} -> {high} clients for {step:.0f} s, {low} for {after:.0f} s "
          f"after; a document of {DOC_SECTIONS[0]} sections per request; entropy strategy, "
          f"care = {care} with {care_tokens} tokens, target rate {target}, TTFT set point "
          f"{set_point:.2f} s)")
    for key in ("off", "on"):
        f = figures[key]
        print(f"  shedding {key:>3}: {f['requests']} requests ({f['errors']} errors); TTFT p95 "
              f"before the step {fmt(f['ttft_p95_base'])} s; in the step ({f['in_step']} "
              f"answers) p50/p95 {fmt(f['ttft_p50_step'])}/{fmt(f['ttft_p95_step'])} s; care "
              f"rate before {fmt(f['care_rate_base'], 2)}, in the step "
              f"{fmt(f['care_rate_step'], 2)}; interventions in the step "
              f"{f['interventions_in_step']}; shed levels seen {f['shed_levels_seen']}")
        if key == "on":
            ci = f["care_rate_after_ci"]
            print(f"             unshed for good {fmt(f['recovered_after_s'], 1)} s after the "
                  f"step; care rate from then on {fmt(f['care_rate_after_recovery'], 2)} "
                  f"[{fmt(ci[0], 2)}, {fmt(ci[1], 2)}] over {f['after_requests']} requests "
                  f"(set point {target})")
    print(f"  p95 reduction with shedding: {fmt(figures.get('p95_reduction'), 2)}")
    return figures


def _rate(rows: list[dict[str, Any]]) -> float | None:
    return sum(r["mode"] == "ANALITICO" for r in rows) / len(rows) if rows else None


# ---- acceptance ---------------------------------------------------------------------


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, passed) for each acceptance figure in ``report``."""
    out: list[tuple[str, str, str, bool | None]] = []
    if "auroc" in report:
        rows = report["auroc"]["rows"]
        used = next(r for r in rows if r["tokens"] == 1 and r["feature"] == "max" and r["skip"])
        out.append(("AUROC within language (the default score: max normalised entropy of "
                    "the first answer token, top-10, filler tokens skipped)",
                    f"en {fmt(used['en'][0])} [{fmt(used['en'][1])}, {fmt(used['en'][2])}], "
                    f"es {fmt(used['es'][0])} [{fmt(used['es'][1])}, {fmt(used['es'][2])}]",
                    "printed", True))
    if "rate" in report:
        r = report["rate"]
        out.append(("realised ANALITICO rate, drifting stream (after warm-up)",
                    f"worst {r['worst_points']:.1f} points", "within 3 points",
                    r["worst_points"] <= 3.0))
        out.append(("realised ANALITICO rate, prompts the calibration never saw",
                    f"worst {r['worst_unseen_points']:.1f} points", "within 5 points",
                    r["worst_unseen_points"] <= 5.0))
    if "ttft" in report:
        t = report["ttft"]
        for path, (tokens, _) in TTFT_PATHS.items():
            if path in ("probe", "specmsg"):
                continue
            added, n = t.get(f"added_{path}_fluido"), t.get(f"added_{path}_fluido_count", 0)
            bound = t.get(f"{path}_fluido_bound_s")
            low, high = t.get(f"added_{path}_fluido_ci", (None, None))
            # Strictly: the median at most the bound; timing noise can put a median that is
            # truly at the bound a few ms above it, so the interval is printed beside it.
            ok = None if added is None or bound is None else (added <= bound and n >= 20)
            noise = ("" if ok or low is None or bound is None or low > bound
                     else "; the bound is inside the median's 95 % interval")
            cost, (c_low, c_high) = (t.get("engine_logprob_cost"),
                                     t.get("engine_logprob_cost_ci", (None, None)))
            if cost is not None:
                noise += (f"; the engine's own logprobs: {fmt(cost)} s "
                          f"[{fmt(c_low)}, {fmt(c_high)}], holding {tokens} with them at the "
                          f"engine alone {fmt(t.get(f'{path}_engine_only_s'))} s")
            out.append((f"speculative FLUIDO, N = {tokens}: added TTFT over rules (median, "
                        f"n = {n})", f"{fmt(added)} s [{fmt(low)}, {fmt(high)}]{noise}",
                        f"<= {tokens - 1} decode steps = {fmt(bound)} s, n >= 20", ok))
        for path, placement in RESTART_PATHS.items():
            key = "restarts" if path == "spec" else f"restarts_{path}"
            restarts = t.get(key) or []
            if restarts:
                within = t.get(f"{key}_within_bound", 0)
                # The acceptance is the default placement's; the fallback's is printed.
                default = path == "spec"
                out.append((f"ANALITICO restart prefill (new tokens), placement {placement}",
                            f"{within}/{len(restarts)} within; new - intervention = "
                            f"{t.get(f'{key}_new_beyond_instruction')} tokens",
                            "intervention + 10 % of the prompt"
                            + ("" if default else " (a fallback placement: printed)"),
                            within == len(restarts) if default else None))
    if "overload" in report:
        o = report["overload"]
        red = o.get("p95_reduction")
        out.append(("overload step: TTFT p95 with the homeostat on vs off",
                    f"{fmt(o['on']['ttft_p95_step'])} vs {fmt(o['off']['ttft_p95_step'])} s, "
                    f"{fmt(None if red is None else red * 100, 0)} % lower", ">= 30 % lower",
                    None if red is None else red >= 0.30))
        on = o["on"]
        rec, (low, high) = on["recovered_after_s"], on["care_rate_after_ci"]
        ok = (rec is not None and rec <= 60.0 and low is not None and high is not None
              and low <= o["target_rate"] <= high)
        out.append(("care rate back at its set point after the step",
                    f"unshed {fmt(rec, 1)} s after; rate {fmt(on['care_rate_after_recovery'], 2)}"
                    f" [{fmt(low, 2)}, {fmt(high, 2)}], n = {on['after_requests']}",
                    f"within 60 s; set point {o['target_rate']} inside the 95 % interval", ok))
    return out


def print_verdicts(report: dict[str, Any]) -> None:
    print(f"\nacceptance ({load()}; at the start: {report.get('load_at_start')})")
    for what, measured, target, ok in verdicts(report):
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {mark}  {what}: {measured} (target: {target})")


# ---- main ---------------------------------------------------------------------------


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default="auroc,rate,ttft,overload")
    parser.add_argument("--engine-url", help="a running engine (else one is started)")
    parser.add_argument("--engine-port", type=int, default=0)
    parser.add_argument("--gateway-ports", default="", help="comma-separated, else free ports")
    parser.add_argument("--workdir", type=Path, help="logs and answers (else a temporary one)")
    parser.add_argument("--items", type=Path, default=ROOT / "lkn/eval/data/items.jsonl")
    parser.add_argument("--per-language", type=int, default=40)
    parser.add_argument("--answer-tokens", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--records", type=Path, help="reuse answers from an earlier auroc run")
    parser.add_argument("--stream", type=int, default=3000)
    parser.add_argument("--probe-tokens", type=int, default=1,
                        help="answer tokens the replayed score reads (rate phase)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="passes over the ttft conversations (FLUIDO pairs: n >= 20)")
    parser.add_argument("--warmup", type=int, default=48)
    parser.add_argument("--threshold", type=float, default=0.65,
                        help="LKN_ENTROPY_THRESHOLD of the entropy gateways in the ttft phase "
                             "(on the score's rank within its language: about 35 %% ANALITICO)")
    parser.add_argument("--ttft-tokens", type=int, default=8)
    parser.add_argument("--restart-prompts", type=int, default=6,
                        help="restart phase: long chats (about 650 tokens) sent")
    parser.add_argument("--overload", default="15,90,120,2,6",
                        help="base,step,after s,clients before/after,clients in the step")
    parser.add_argument("--care", default="consistency",
                        help="the care whose cost makes the overload step")
    parser.add_argument("--care-tokens", type=int, default=48,
                        help="tokens per answer of the overload phase (each of a vote's K too)")
    parser.add_argument("--doc-sections", type=int, default=DOC_SECTIONS[0],
                        help="sections per document in the overload phase (~35 tokens each)")
    parser.add_argument("--target-rate", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("bench_decisions.json"))
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lkn-bench-decisions-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir)
    report: dict[str, Any] = {"load_at_start": load(), "started": time.strftime("%FT%TZ",
                                                                              time.gmtime())}
    ports = ([int(p) for p in args.gateway_ports.split(",") if p]
             or [free_port() for _ in range(1 + len(TTFT_PATHS))])
    say(f"{load()}; logs in {workdir}")
    # Stopped from outside (SIGTERM, or SIGINT where a shell ignores it): the engine and the
    # gateways it started are stopped all the same.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    try:
        if args.engine_url:
            stack.engine_url = args.engine_url.rstrip("/")
        elif phases & {"auroc", "ttft", "overload", "restart"} or not args.records:
            stack.start_engine(args.engine_port or free_port())
        if stack.engine_url:
            async with aiohttp.ClientSession() as session:
                async with session.get(stack.engine_url + "/v1/models") as response:
                    MODEL[0] = (await response.json())["data"][0]["id"]
        records: list[dict[str, Any]] = []
        if args.records and args.records.exists():
            records = json.loads(args.records.read_text())
        elif phases & {"auroc", "rate"}:
            items = load_items(args.items, args.per_language)
            say(f"answering {len(items)} questions with logprobs; {load()}")
            records = await answer_items(stack.engine_url, items, args.answer_tokens,
                                         args.concurrency)
            (workdir / "records.json").write_text(json.dumps(records))
            say(f"answers kept in {workdir / 'records.json'}")
        if "auroc" in phases:
            report["auroc"] = report_auroc(records)
        if "rate" in phases:
            report["rate"] = report_rate(records, args.stream, args.probe_tokens)
        if "ttft" in phases:
            say(f"ttft phase; {load()}")
            report["ttft"] = await phase_ttft(stack, ports, args.rounds, args.warmup,
                                              args.threshold, args.ttft_tokens)
            report["ttft"]["load"] = load()
        if "restart" in phases:
            say(f"restart phase; {load()}")
            report["restart"] = await phase_restart(stack, ports[0], args.restart_prompts,
                                                    args.ttft_tokens)
        if "overload" in phases:
            base, step, after, low, high = (float(x) for x in args.overload.split(","))
            DOC_SECTIONS[0] = args.doc_sections
            report["overload"] = await phase_overload(
                stack, ports, args.target_rate, base, step, after, int(low), int(high),
                args.care, args.care_tokens)
    except asyncio.CancelledError:
        say("stopped before the end; the figures of the phases that finished follow")
        report["stopped_early"] = True
    finally:
        stack.stop()
    report["load_at_end"] = load()
    report["verdicts"] = verdicts(report)
    print_verdicts(report)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    say(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
