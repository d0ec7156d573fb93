"""Benchmark the gateway against the SGLang test double: CPU per request, added TTFT, streaming
throughput against the double alone (REST and gRPC), and peak memory; and the same figures for
a minimal aiohttp pass-through proxy (scripts/passthrough_proxy.py) as a reference.

    PYTHONPATH=. python scripts/bench.py [--quick] [--json-only]

The double, the gateway and the proxy each run in their own process (``python -m
scripts.lib.sglang_double``, ``python -m lkn serve`` at its default settings apart from ports and the
engine URL: info logging, rules decisions, metrics); the load generator runs here, so its CPU
never counts as theirs. CPU time is read from ``/proc/<pid>/stat``, peak RSS from ``VmHWM`` in
``/proc/<pid>/status`` (Linux only). Prints a table with the targets, then one JSON line with
every figure.

Isolation: with two CPUs or more, the process under test (the gateway, or the pass-through
reference) is pinned to one CPU and the load generator and the doubles to the others
(``--no-pin`` leaves placement to the scheduler). Otherwise the load generator and the double
take turns with the gateway on its core, and the extra latency they cause there is counted as
the gateway's; a direct run has the same harness on the same CPUs, so "direct" and "through the
gateway" differ by the gateway alone. Other work on the machine is not isolated: the table
reports the cores it used during each run ("others").

Time to first token at concurrency 64 is measured two ways. ``added_ttft_p50_ms_c64`` (the
target): 64 clients each sending one streamed request after another (closed loop), their
first requests spread over one answer's length, as 64 users arrive, so arrivals are spread as
in steady traffic. ``added_ttft_p50_ms_c64_burst``: waves of 64 requests sent at the same
instant; the 64th then waits for the 63 before it in each process's single event loop, so the
figure is about 32 times the CPU one request costs before it is forwarded (reported, no target).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lkn._proto.lkn.v1 import gateway_pb2 as pb  # noqa: E402
from lkn.rpc.client import stream_generate  # noqa: E402
from scripts.lib.benchkit import (  # noqa: E402
    CLK_TCK, Child, Gateway, child_env, launch_gateway, percentile, start_double,
)

MIB = 1024 * 1024
PROMPT = "Say hello to the world"
REQUEST_TIMEOUT = 30.0
#: A process that used this many cores during a run is reported as (nearly) saturating one.
SATURATED = 0.8

#: Concurrency of the CPU-per-request and TTFT-under-load figures.
LOAD_C = 64

TARGETS: dict[str, tuple[str, float, str]] = {
    # figure: (comparison, bound, unit)
    "gateway_cpu_ms_per_request": ("<=", 0.35, "ms"),
    "gateway_cpu_ms_per_stream_rest": ("<=", 4.0, "ms"),
    "added_ttft_p50_ms_c64": ("<=", 5.0, "ms"),
    "rest_throughput_ratio_c64": (">=", 0.98, "x"),
    "gateway_peak_rss_mib": ("<=", 80.0, "MiB"),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- child processes ------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine (all cores) since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / CLK_TCK


#: CPUs for the process under test and for everything else (None: no pinning).
PINNING: dict[str, set[int]] = {}


def plan_pinning(enabled: bool) -> str:
    """Pin this process (and so the doubles it starts) away from the CPU the gateway and
    the pass-through get; returns a description for the report."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        return "off"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return f"off (only CPU {cpus[0]} available)"
    PINNING["tested"], PINNING["harness"] = {cpus[-1]}, set(cpus[:-1])
    os.sched_setaffinity(0, PINNING["harness"])
    return (f"gateway and pass-through on CPU {cpus[-1]}; load generator and doubles on "
            f"CPU {','.join(map(str, cpus[:-1]))}")


def pin_tested(pid: int) -> None:
    """Every thread of ``pid`` onto the tested CPU (threads started later inherit it)."""
    cpus = PINNING.get("tested")
    if cpus is None:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def start_proxy(upstream: str, name: str, logdir: Path) -> Gateway:
    """The minimal pass-through reference in front of ``upstream``, pinned like the gateway."""
    argv = [sys.executable, str(ROOT / "scripts" / "passthrough_proxy.py"),
            "--upstream", upstream]  # fmt: skip
    child = Child(name, argv, logdir, child_env(clean=True), stdout_pipe=True)
    pin_tested(child.pid)
    url = child.announced()
    pin_tested(child.pid)
    return Gateway(child, url)


async def start_gateway(engine_url: str, name: str, logdir: Path, env_file: Path,
                        log_level: str | None = None, profile: Path | None = None,
                        extra: dict[str, str] | None = None) -> Gateway:  # fmt: skip
    settings = {"LKN_HOST": "127.0.0.1", "LKN_GRPC_ENABLED": "true"}
    if log_level is not None:
        settings["LKN_LOG_LEVEL"] = log_level
    settings.update(extra or {})
    python_args = [] if profile is None else ["-m", "cProfile", "-o", str(profile)]
    for attempt in range(3):  # a free port can be taken between the probe and the bind
        gw = launch_gateway(name, engine_url, logdir, env_file=env_file, settings=settings,
                            env=child_env(clean=True), python_args=python_args)  # fmt: skip
        pin_tested(gw.child.pid)
        if await gw.wait_ready_async(timeout=30.0, interval=0.1):
            pin_tested(gw.child.pid)  # the threads it started meanwhile too
            return gw
        tail = gw.child.log_tail()
        gw.stop()
        log(f"{name} not ready (attempt {attempt + 1}):\n{tail}")
    raise RuntimeError(f"{name} never became ready")


# ---- load ---------------------------------------------------------------------------------


@dataclass
class Result:
    tokens: int = 0
    ttft: float | None = None


@dataclass
class Run:
    label: str
    ok: int = 0
    errors: int = 0
    tokens: int = 0
    wall: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    #: CPU seconds used during the run, by process name ("gateway", "double", "bench", "others").
    cpu: dict[str, float] = field(default_factory=dict)
    #: Of which in the kernel (system time), for the gateway.
    gateway_sys: float = 0.0

    def add(self, other: Run) -> None:
        self.ok += other.ok
        self.errors += other.errors
        self.tokens += other.tokens
        self.wall += other.wall
        self.first_errors += other.first_errors[: 3 - len(self.first_errors)]
        self.ttfts += other.ttfts
        for key, value in other.cpu.items():
            self.cpu[key] = self.cpu.get(key, 0.0) + value
        self.gateway_sys += other.gateway_sys

    def util(self, who: str) -> float:
        """Cores used by ``who`` during the run."""
        return self.cpu.get(who, 0.0) / self.wall if self.wall > 0 else 0.0


OneRequest = Callable[[], Awaitable[Result]]


async def drive(label: str, one: OneRequest, requests: int, concurrency: int, duration: float,
                watched: dict[str, Child], stagger: float = 0.0) -> Run:  # fmt: skip
    """Run ``requests`` requests, ``concurrency`` at a time, stopping new ones after ``duration``
    seconds; measure the CPU of every watched process meanwhile.

    With ``stagger`` (seconds), the clients start one after another over that time and each
    sends ``requests // concurrency`` requests; the first request of each is not timed (it
    starts while fewer than ``concurrency`` are in flight)."""
    run = Run(label)
    issued = 0
    stop_at = time.monotonic() + duration
    workers = max(1, min(concurrency, requests))
    quota = requests // workers

    async def worker(index: int) -> None:
        nonlocal issued
        sent = 0
        if stagger > 0:
            await asyncio.sleep(stagger * index / workers)
        while time.monotonic() < stop_at and (
                sent < quota if stagger > 0 else issued < requests):  # fmt: skip
            issued += 1
            sent += 1
            try:
                result = await asyncio.wait_for(one(), REQUEST_TIMEOUT)
            except (Exception, asyncio.TimeoutError) as exc:  # noqa: BLE001 - counted, reported
                run.errors += 1
                if len(run.first_errors) < 3:
                    run.first_errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            run.ok += 1
            run.tokens += result.tokens
            if result.ttft is not None and not (stagger > 0 and sent == 1):
                run.ttfts.append(result.ttft)

    before = {name: c.cpu() for name, c in watched.items()}
    gateway = watched.get("gateway")
    sys0 = gateway.cpu_sys() if gateway is not None else 0.0
    bench0, busy0 = _self_cpu(), machine_busy_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    run.wall = time.perf_counter() - t0
    run.cpu = {name: c.cpu() - before[name] for name, c in watched.items()}
    run.gateway_sys = gateway.cpu_sys() - sys0 if gateway is not None else 0.0
    run.cpu["bench"] = _self_cpu() - bench0
    ours = sum(run.cpu.values())
    run.cpu["others"] = max(0.0, machine_busy_seconds() - busy0 - ours)
    if run.errors:
        log(f"{label}: {run.errors} error(s), e.g. {run.first_errors[0]}")
    return run


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def chat_body(tokens: int, stream: bool) -> bytes:
    return json.dumps({
        "model": "smollm2", "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens, "stream": stream,
    }).encode()  # fmt: skip


_JSON = {"Content-Type": "application/json"}


def rest_unary(session: aiohttp.ClientSession, url: str, tokens: int) -> OneRequest:
    body = chat_body(tokens, stream=False)

    async def one() -> Result:
        async with session.post(url + "/v1/chat/completions", data=body, headers=_JSON) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {payload[:200]!r}")
        return Result(tokens=tokens)

    return one


def rest_stream(session: aiohttp.ClientSession, url: str, tokens: int) -> OneRequest:
    """A streamed chat completion; counts content events and times the first one."""
    body = chat_body(tokens, stream=True)

    async def one() -> Result:
        started = time.perf_counter()
        ttft: float | None = None
        count = 0
        done = False
        async with session.post(url + "/v1/chat/completions", data=body, headers=_JSON) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
            async for line in resp.content:
                if b'"content":"' in line and b'"content":""' not in line:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    count += 1
                elif line.startswith(b"data: [DONE]"):
                    done = True
                elif b'"error"' in line:
                    raise RuntimeError(f"error event: {line[:200]!r}")
        if not done:
            raise RuntimeError("stream ended without [DONE]")
        if count != tokens:
            raise RuntimeError(f"{count} content events, expected {tokens}")
        return Result(tokens=count, ttft=ttft)

    return one


def grpc_stream(channel: grpc.aio.Channel, tokens: int) -> OneRequest:
    message = pb.ChatMessage(role="user", content=PROMPT)
    request = pb.GenerateRequest(chat=pb.Chat(messages=[message]))
    request.sampling.max_tokens = tokens

    async def one() -> Result:
        result = await stream_generate(channel, request, timeout=REQUEST_TIMEOUT)
        deltas = result.messages - 2  # start and finish around the text deltas
        if result.finish is None or deltas != tokens:
            raise RuntimeError(f"{deltas} deltas, finish={result.finish is not None}")
        return Result(tokens=deltas, ttft=result.first_text_s)

    return one


# ---- the benchmark ------------------------------------------------------------------------


@dataclass
class Plan:
    requests: int
    streams: int
    ttft_pairs: int
    waves: int
    duration: float
    tokens: int
    token_delay: float
    concurrency: list[int]
    warning_log: bool = True


@dataclass
class Report:
    figures: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pinning: str = "off"

    def record(self, run: Run) -> None:
        self.runs[run.label] = {
            "ok": run.ok, "errors": run.errors, "wall_s": round(run.wall, 3),
            "tokens_per_s": round(run.tokens / run.wall, 1) if run.wall else None,
            "cores": {k: round(v / run.wall, 3) for k, v in run.cpu.items()} if run.wall else {},
            "gateway_sys_share": (
                round(run.gateway_sys / run.cpu["gateway"], 3) if run.cpu.get("gateway") else None
            ),
        }  # fmt: skip
        if run.errors:
            self.notes.append(f"{run.label}: {run.errors} failed request(s): {run.first_errors[0]}")
        for who in ("double", "bench"):
            if run.util(who) >= SATURATED:
                name = "the SGLang double" if who == "double" else "the load generator"
                self.notes.append(
                    f"{run.label}: {name} used {run.util(who):.2f} cores (near saturation)"
                )


def per_ms(seconds: float, count: int) -> float | None:
    return round(seconds * 1000.0 / count, 4) if count else None


async def cpu_per_request(report: Report, plan: Plan, gw: Gateway, double: Child,
                          key: str, label: str) -> None:  # fmt: skip
    """CPU of ``gw`` per non-streamed 16-token answer, token delay 0, concurrency 64; the median
    of three rounds so one burst of outside load does not decide the figure."""
    watched = {"gateway": gw.child, "double": double}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        one = rest_unary(session, gw.url, 16)
        await drive(f"{label} warm-up", one, min(200, plan.requests), LOAD_C, plan.duration,
                    watched)  # fmt: skip
        rounds = []
        total = Run(label)
        for _ in range(3):
            run = await drive(label, one, max(1, plan.requests // 3), LOAD_C, plan.duration,
                              watched)  # fmt: skip
            total.add(run)
            if run.ok:
                rounds.append(run.cpu["gateway"] * 1000.0 / run.ok)
    report.record(total)
    report.figures[key] = round(sorted(rounds)[len(rounds) // 2], 4) if rounds else None
    report.runs[label]["rounds_ms"] = [round(r, 4) for r in rounds]


async def cpu_per_stream(report: Report, plan: Plan, gw: Gateway, double: Child,
                         channel: grpc.aio.Channel | None, prefix: str = "gateway") -> None:  # fmt: skip
    """CPU of ``gw`` per streamed answer of ``plan.tokens`` tokens (token delay 0, concurrency
    16); gRPC too when a channel is given."""
    watched = {"gateway": gw.child, "double": double}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        kinds: dict[str, OneRequest] = {"rest": rest_stream(session, gw.url, plan.tokens)}
        if channel is not None:
            kinds["grpc"] = grpc_stream(channel, plan.tokens)
        for kind, one in kinds.items():
            await drive(f"{prefix} {kind} stream warm-up", one, 32, 16, plan.duration, watched)
            run = await drive(f"{prefix} {kind} stream cpu c16 delay0", one, plan.streams, 16,
                              plan.duration, watched)  # fmt: skip
            report.record(run)
            report.figures[f"{prefix}_cpu_ms_per_stream_{kind}"] = per_ms(run.cpu["gateway"], run.ok)


async def saturation(report: Report, plan: Plan, gw: Gateway, double: Child,
                     double_url: str) -> None:  # fmt: skip
    """Streams at concurrency 64 with no token delay, direct and through the gateway: which
    process saturates first."""
    watched = {"gateway": gw.child, "double": double}
    requests = max(64, plan.streams)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for target, url in (("direct", double_url), ("rest", gw.url)):
            label = f"{target} stream c64 delay0"
            run = await drive(label, rest_stream(session, url, plan.tokens), requests, 64,
                              plan.duration, watched)  # fmt: skip
            report.record(run)
            report.figures[f"{target}_tokens_per_s_c64_delay0"] = (
                round(run.tokens / run.wall, 1) if run.wall else None
            )
            report.figures[f"double_cores_{target}_c64_delay0"] = round(run.util("double"), 3)
    if (report.figures.get("double_cores_direct_c64_delay0") or 0.0) >= SATURATED:
        report.notes.append(
            "at concurrency 64 with token delay 0 the SGLang double saturates a core: "
            "the delay-0 stream figures measure the double as much as the gateway"
        )


async def ttft(report: Report, plan: Plan, gw: Gateway, double: Child, double_url: str) -> None:
    """Time to first content at concurrency 1, direct and through the gateway, alternating
    (ABBA) so drift in outside load hits both alike."""
    watched = {"gateway": gw.child, "double": double}
    tokens = 2
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        direct = rest_stream(session, double_url, tokens)
        through = rest_stream(session, gw.url, tokens)
        for one in (direct, through):
            await drive("ttft warm-up", one, 10, 1, plan.duration, watched)
        runs = {"direct": Run("ttft direct c1"), "gateway": Run("ttft gateway c1")}
        deadline = time.monotonic() + 4 * plan.duration
        for i in range(plan.ttft_pairs):
            if time.monotonic() > deadline:
                break
            order = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
            for name in order:
                one = direct if name == "direct" else through
                runs[name].add(await drive(runs[name].label, one, 1, 1, plan.duration, watched))
    for name, run in runs.items():
        report.record(run)
        ms = [t * 1000.0 for t in run.ttfts]
        report.figures[f"ttft_{name}_p50_ms"] = round(percentile(ms, 0.5), 3) if ms else None
        report.figures[f"ttft_{name}_p99_ms"] = round(percentile(ms, 0.99), 3) if ms else None
    for q in ("p50", "p99"):
        d, g = report.figures[f"ttft_direct_{q}_ms"], report.figures[f"ttft_gateway_{q}_ms"]
        added = round(g - d, 3) if d is not None and g is not None else None
        report.figures[f"added_ttft_{q}_ms"] = added


async def ttft_under_load(report: Report, plan: Plan, targets: dict[str, tuple[str, Child]],
                          double: Child) -> None:  # fmt: skip
    """Time to first content at concurrency 64 (token delay ``plan.token_delay``), for each
    target (name -> (base URL, process); "direct" is the double itself), two ways:

    - steady (the target figure): 64 clients in a closed loop, started one after another over
      one answer's length, each sending ``plan.waves`` streamed requests; the targets take
      turns, in the order ABC then CBA, so drift hits all alike;
    - burst: waves of 64 requests sent at the same instant, the targets taking turns wave by
      wave.
    """
    tokens = 8
    waves = max(2, plan.waves)
    answer_s = tokens * plan.token_delay
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        ones = {name: rest_stream(session, url, tokens) for name, (url, _) in targets.items()}
        for name, one in ones.items():
            await drive(f"ttft {name} warm-up", one, LOAD_C, LOAD_C, plan.duration, {})
        steady = {name: Run(f"ttft {name} c{LOAD_C}") for name in targets}
        for half in range(2):
            order = list(targets) if half == 0 else list(reversed(targets))
            for name in order:
                watched = {"gateway": targets[name][1], "double": double}
                # Each half sends half the rounds, plus the untimed first request per client.
                rounds = waves - waves // 2 if half == 0 else waves // 2
                steady[name].add(await drive(steady[name].label, ones[name],
                                             LOAD_C * (rounds + 1), LOAD_C, plan.duration,
                                             watched, stagger=answer_s))  # fmt: skip
        burst = {name: Run(f"ttft {name} c{LOAD_C} burst") for name in targets}
        for wave in range(waves):
            order = list(targets) if wave % 2 == 0 else list(reversed(targets))
            for name in order:
                watched = {"gateway": targets[name][1], "double": double}
                burst[name].add(await drive(burst[name].label, ones[name], LOAD_C, LOAD_C,
                                            plan.duration, watched))  # fmt: skip
    for suffix, runs in (("", steady), ("_burst", burst)):
        p50s: dict[str, float | None] = {}
        for name, run in runs.items():
            report.record(run)
            ms = [t * 1000.0 for t in run.ttfts]
            p50s[name] = round(percentile(ms, 0.5), 3) if ms else None
            report.figures[f"ttft_{name}_p50_ms_c{LOAD_C}{suffix}"] = p50s[name]
        direct = p50s.pop("direct", None)
        for name, p50 in p50s.items():
            added = round(p50 - direct, 3) if p50 is not None and direct is not None else None
            prefix = "" if name == "gateway" else f"{name}_"
            report.figures[f"{prefix}added_ttft_p50_ms_c{LOAD_C}{suffix}"] = added


async def throughput(report: Report, plan: Plan, gw: Gateway, double: Child, double_url: str,
                     channel: grpc.aio.Channel, proxy: Gateway) -> None:  # fmt: skip
    """Streamed answers of ``plan.tokens`` tokens at ``plan.token_delay`` s/token: tokens per
    second through the gateway (REST, gRPC) over tokens per second direct, per concurrency.
    Each target runs ``plan.waves`` waves of ``c`` requests, split ABC then CBA against drift;
    the pass-through proxy runs beside them as the reference."""
    watched = {"gateway": gw.child, "double": double}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        targets: dict[str, OneRequest] = {
            "direct": rest_stream(session, double_url, plan.tokens),
            "rest": rest_stream(session, gw.url, plan.tokens),
            "grpc": grpc_stream(channel, plan.tokens),
            "passthrough": rest_stream(session, proxy.url, plan.tokens),
        }
        for c in plan.concurrency:
            suffix = f"c{c}_delay{plan.token_delay:g}"
            label = f"stream c{c} delay{plan.token_delay:g}"
            totals = {name: Run(f"{name} {label}") for name in targets}
            halves = [plan.waves - plan.waves // 2, plan.waves // 2]
            for half, waves in enumerate(halves):
                if waves == 0:
                    continue
                order = list(targets) if half == 0 else list(reversed(targets))
                for name in order:
                    who = {"gateway": proxy.child if name == "passthrough" else gw.child,
                           "double": double}
                    totals[name].add(await drive(totals[name].label, targets[name], waves * c, c,
                                                 plan.duration, who))  # fmt: skip
            base = totals["direct"]
            base_rate = base.tokens / base.wall if base.wall else 0.0
            report.figures[f"direct_tokens_per_s_c{c}"] = round(base_rate, 1)
            for name, run in totals.items():
                report.record(run)
                if name == "direct":
                    continue
                rate = run.tokens / run.wall if run.wall else 0.0
                report.figures[f"{name}_tokens_per_s_c{c}"] = round(rate, 1)
                report.figures[f"{name}_throughput_ratio_c{c}"] = (
                    round(rate / base_rate, 4) if base_rate else None
                )
                key = ("passthrough_cpu_ms_per_stream_rest" if name == "passthrough"
                       else f"gateway_cpu_ms_per_stream_{name}")
                report.figures[f"{key}_{suffix}"] = per_ms(run.cpu["gateway"], run.ok)


async def bench(plan: Plan, report: Report, workdir: Path, profile: Path | None) -> None:
    env_file = workdir / "empty.env"
    env_file.write_text("")
    if profile is not None:
        report.notes.append(f"the delay-0 gateway ran under cProfile ({profile}): "
                            "its CPU figures are inflated")  # fmt: skip
    clean = child_env(clean=True)
    double0, url0 = start_double("double-delay0", workdir, "--token-delay", "0.0", env=clean)
    doubled, urld = start_double("double-delayed", workdir, "--token-delay",
                                 str(plan.token_delay), env=clean)  # fmt: skip
    for name, c in (("double (delay 0)", double0), ("double (delayed)", doubled)):
        log(f"{name} pid {c.pid}")
    gw_fast, gw_slow = await asyncio.gather(
        start_gateway(url0, "gateway-delay0", workdir, env_file, profile=profile),
        start_gateway(urld, "gateway-delayed", workdir, env_file),
    )
    gateways = [gw_fast, gw_slow]
    for gw in gateways:
        log(f"{gw.child.name} ready at {gw.url}, grpc {gw.grpc_target} (pid {gw.child.pid})")
    proxies = []
    for name, url in (("passthrough-delay0", url0), ("passthrough-delayed", urld)):
        proxy = start_proxy(url, name, workdir)
        proxies.append(proxy)
        log(f"{name} (reference) at {proxy.url} (pid {proxy.child.pid})")
    proxy_fast, proxy_slow = proxies
    idle = {g.child.name: g.child.cpu() for g in gateways}
    await asyncio.sleep(2.0)  # one health-check period of the default settings
    report.figures["gateway_idle_cores"] = round(
        max(g.child.cpu() - idle[g.child.name] for g in gateways) / 2.0, 4
    )

    log(f"non-streamed CPU: {plan.requests} requests, 16 tokens, concurrency {LOAD_C}, "
        "default settings (log level info)")  # fmt: skip
    await cpu_per_request(report, plan, gw_fast, double0, "gateway_cpu_ms_per_request",
                          f"rest unary c{LOAD_C} delay0")  # fmt: skip
    await cpu_per_request(report, plan, proxy_fast, double0, "passthrough_cpu_ms_per_request",
                          f"passthrough unary c{LOAD_C} delay0")  # fmt: skip
    if plan.warning_log:
        log("non-streamed CPU again with LKN_LOG_LEVEL=warning")
        gw_quiet = await start_gateway(url0, "gateway-warning", workdir, env_file,
                                       log_level="warning")  # fmt: skip
        gateways.append(gw_quiet)
        await cpu_per_request(report, plan, gw_quiet, double0,
                              "gateway_cpu_ms_per_request_log_warning",
                              f"rest unary c{LOAD_C} delay0 warning")  # fmt: skip
        report.figures["gateway_quiet_peak_rss_mib"] = round(gw_quiet.child.peak_rss_mib(), 1)
        gw_quiet.child.stop()
        gateways.remove(gw_quiet)

    async with grpc.aio.insecure_channel(gw_fast.grpc_target) as fast_channel:
        log(f"streamed CPU: {plan.streams} streams of {plan.tokens} tokens, REST and gRPC")
        await cpu_per_stream(report, plan, gw_fast, double0, fast_channel)
    log("streamed CPU with the loop guard off (LKN_LOOP_GUARD=0), REST")
    gw_unguarded = await start_gateway(url0, "gateway-guard-off", workdir, env_file,
                                       extra={"LKN_LOOP_GUARD": "0"})
    gateways.append(gw_unguarded)
    await cpu_per_stream(report, plan, gw_unguarded, double0, None, prefix="gateway_guard_off")
    gw_unguarded.child.stop()
    gateways.remove(gw_unguarded)
    await cpu_per_stream(report, plan, proxy_fast, double0, None, prefix="passthrough")
    log("saturation check: streams at concurrency 64, token delay 0")
    await saturation(report, plan, gw_fast, double0, url0)

    log(f"TTFT: {plan.ttft_pairs} pairs at concurrency 1, token delay {plan.token_delay:g} s")
    await ttft(report, plan, gw_slow, doubled, urld)
    log(f"TTFT under load: {LOAD_C} streams at a time (steady, then bursts), direct, gateway "
        "and pass-through")  # fmt: skip
    await ttft_under_load(report, plan, {
        "direct": (urld, doubled), "gateway": (gw_slow.url, gw_slow.child),
        "passthrough": (proxy_slow.url, proxy_slow.child),
    }, doubled)  # fmt: skip

    async with grpc.aio.insecure_channel(gw_slow.grpc_target) as slow_channel:
        log(f"throughput: {plan.tokens}-token streams at {plan.token_delay:g} s/token, "
            f"concurrency {plan.concurrency}")  # fmt: skip
        await throughput(report, plan, gw_slow, doubled, urld, slow_channel, proxy_slow)

    report.figures["gateway_peak_rss_mib"] = round(max(g.child.peak_rss_mib() for g in gateways), 1)
    report.figures["passthrough_peak_rss_mib"] = round(
        max(p.child.peak_rss_mib() for p in proxies), 1
    )
    for g in gateways + proxies:
        g.stop()
    double0.stop()
    doubled.stop()


# ---- output -------------------------------------------------------------------------------


def judge(figures: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    verdicts: dict[str, dict[str, Any]] = {}
    for key, (op, bound, unit) in TARGETS.items():
        value = figures.get(key)
        if value is None:
            verdict = "MISSING"
        elif op == "<=":
            verdict = "PASS" if value <= bound else "FAIL"
        else:
            verdict = "PASS" if value >= bound else "FAIL"
        verdicts[key] = {"value": value, "target": f"{op} {bound:g} {unit}", "result": verdict}
    return verdicts


def print_table(report: Report, verdicts: dict[str, dict[str, Any]], plan: Plan) -> None:
    f = report.figures
    width = max(len(k) for k in f) + 2
    print(f"L-kn gateway benchmark  (tokens={plan.tokens}, token delay={plan.token_delay:g} s, "
          f"concurrency={plan.concurrency}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f})")  # fmt: skip
    print(f"pinning: {report.pinning}")
    print(f"{'figure':<{width}} {'value':>12}  target")
    for key, value in f.items():
        shown = "-" if value is None else f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
        verdict = verdicts.get(key)
        target = f"{verdict['target']:<12} {verdict['result']}" if verdict else ""
        print(f"{key:<{width}} {shown:>12}  {target}")
    print()
    print(f"{'run':<36} {'ok':>6} {'err':>4} {'wall s':>8} {'tok/s':>9}  "
          "cores gw/double/bench/others  gw sys%")  # fmt: skip
    for label, run in report.runs.items():
        cores = run["cores"]
        share = "/".join(
            f"{cores.get(k, 0.0):.2f}" for k in ("gateway", "double", "bench", "others")
        )
        rate = "-" if run["tokens_per_s"] is None else f"{run['tokens_per_s']:.0f}"
        sys_share = run["gateway_sys_share"]
        sys_pct = "-" if sys_share is None else f"{100 * sys_share:.0f}"
        print(f"{label:<36} {run['ok']:>6} {run['errors']:>4} {run['wall_s']:>8.2f} {rate:>9}  "
              f"{share:<28} {sys_pct:>7}")  # fmt: skip
    for note in report.notes:
        print(f"note: {note}")
    print()
    print("targets:")
    for key, verdict in verdicts.items():
        value = verdict["value"]
        shown = "-" if value is None else f"{value:.3f}"
        print(f"  {key:<32} {shown:>10}  {verdict['target']:<12} {verdict['result']}")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a reduced run (under a minute)")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    parser.add_argument("--token-delay", type=float, default=0.02,
                        help="seconds per token for TTFT and throughput (default 0.02)")
    parser.add_argument("--tokens", type=int, default=64,
                        help="tokens per streamed answer (default 64)")  # fmt: skip
    parser.add_argument("--concurrency", default="1,16,64",
                        help="concurrency levels for throughput (default 1,16,64)")
    parser.add_argument("--requests", type=int, help="non-streamed requests for the CPU figure "
                        "(default 2000, quick 300)")  # fmt: skip
    parser.add_argument("--streams", type=int, help="streams for the per-stream CPU figure "
                        "(default 600, quick 96)")  # fmt: skip
    parser.add_argument("--ttft-pairs", type=int, help="direct/gateway pairs for TTFT "
                        "(default 300, quick 40)")  # fmt: skip
    parser.add_argument("--waves", type=int, help="waves of c requests per throughput target "
                        "(default 6, quick 1)")  # fmt: skip
    parser.add_argument("--duration", type=float, help="longest time in seconds one measured run "
                        "may keep issuing requests (default 60, quick 10)")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the gateway and the harness to separate CPUs")
    parser.add_argument("--profile-gateway", type=Path, metavar="FILE",
                        help="run the delay-0 gateway under cProfile and write its stats to FILE "
                        "(its CPU figures are then inflated)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        levels = sorted({int(x) for x in args.concurrency.split(",") if x.strip()})
    except ValueError:
        parser.error("--concurrency takes a comma-separated list of integers")
    if not levels or min(levels) < 1:
        parser.error("--concurrency needs levels >= 1")
    if args.tokens < 1 or args.token_delay < 0:
        parser.error("--tokens must be >= 1 and --token-delay >= 0")
    quick = args.quick
    plan = Plan(
        requests=args.requests or (300 if quick else 2000),
        streams=args.streams or (96 if quick else 600),
        ttft_pairs=args.ttft_pairs or (40 if quick else 300),
        waves=args.waves or (1 if quick else 6),
        duration=args.duration or (10.0 if quick else 60.0),
        tokens=args.tokens,
        token_delay=args.token_delay,
        concurrency=levels,
    )
    return args, plan


def main(argv: list[str] | None = None) -> int:
    if not Path("/proc/self/stat").exists():
        print("bench: needs Linux /proc", file=sys.stderr)
        return 2
    args, plan = parse_args(argv)
    import uvloop

    report = Report()
    pinning = report.pinning = plan_pinning(not args.no_pin)
    log(f"pinning: {pinning}")
    atexit.register(Child.stop_all)
    started = time.monotonic()
    status = 0
    with tempfile.TemporaryDirectory(prefix="lkn-bench-") as tmp:
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                task_holder: list[asyncio.Task[None]] = []

                async def run() -> None:
                    task = asyncio.current_task()
                    assert task is not None
                    task_holder.append(task)
                    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
                    await bench(plan, report, Path(tmp), args.profile_gateway)

                runner.run(run())
        except (KeyboardInterrupt, asyncio.CancelledError):
            log("interrupted; stopping the child processes")
            status = 130
        except Exception as exc:  # noqa: BLE001 - report what was measured so far
            log(f"benchmark failed: {type(exc).__name__}: {exc}")
            for child in Child.registry:
                log(f"{child.name} log tail:\n{child.log_tail()}")
            status = 1
        finally:
            Child.stop_all()
    verdicts = judge(report.figures)
    if not args.json_only:
        print_table(report, verdicts, plan)
    line = {
        "figures": report.figures,
        "targets": verdicts,
        "notes": report.notes,
        "runs": report.runs,
        "config": {
            "quick": args.quick, "tokens": plan.tokens, "token_delay_s": plan.token_delay,
            "concurrency": plan.concurrency, "requests": plan.requests, "streams": plan.streams,
            "ttft_pairs": plan.ttft_pairs, "waves": plan.waves,
        },
        "environment": {
            "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(),
            "pinning": pinning,
            "elapsed_s": round(time.monotonic() - started, 1),
        },
    }  # fmt: skip
    print(json.dumps(line, separators=(",", ":")), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
