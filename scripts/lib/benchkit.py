"""What the benchmark scripts (and the live tests) share: free ports, percentiles, the
processes they start (the SGLang double, the gateway, anything that announces ``READY
<url>``) with a wait until ready and a clean stop, and a reader of streamed chat answers
(server-sent events).

Standard library only, so that a script that needs nothing else (scripts/bench_engines.py)
still runs with any Python 3.11.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

#: The repository's root (scripts/lib/benchkit.py is two folders below it).
ROOT = Path(__file__).resolve().parents[2]
#: ``python -m`` name of the SGLang double.
DOUBLE_MODULE = "scripts.lib.sglang_double"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process can still take it
    before the caller binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float, method: str = "linear") -> float:
    """The ``q`` quantile (0 to 1) of ``values``; NaN when there are none.

    ``method``: ``linear``, interpolated between the two nearest ranks (numpy's default);
    ``nearest_rank``, the smallest value with at least a share ``q`` of the values at or below
    it (the ceil(q n)-th smallest); ``index``, the value at index int(q n) of the sorted values
    (one rank above ``nearest_rank`` where q n is whole)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    last = len(ordered) - 1
    if method == "nearest_rank":
        return ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))]
    if method == "index":
        return ordered[min(last, int(q * len(ordered)))]
    if method != "linear":
        raise ValueError(f"unknown percentile method {method!r}")
    pos = last * q
    low = int(pos)
    high = min(low + 1, last)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET of ``url``; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def child_env(clean: bool = False) -> dict[str, str]:
    """This process's environment with the repository importable and output unbuffered;
    ``clean``: without any gateway or engine settings (``LKN_*``, ``ENGINE_*``)."""
    env = {k: v for k, v in os.environ.items()
           if not (clean and k.startswith(("LKN_", "ENGINE_")))}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---- processes ------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU of a whole process (every thread), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (``VmHWM``, ``VmRSS`` ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Child:
    """One started process. Its output goes to ``<log_dir>/<name>.log``, so a full pipe never
    blocks it; with ``stdout_pipe`` its stdout is kept for :meth:`announced` instead. Every
    child is in :attr:`registry` until stopped, so that :meth:`stop_all` can clean up."""

    registry: ClassVar[list[Child]] = []

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path,
                 env: Mapping[str, str] | None = None, *, stdout_pipe: bool = False,
                 new_session: bool = False, append: bool = False) -> None:  # fmt: skip
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab" if append else "wb")
        self.proc = subprocess.Popen(
            list(argv), cwd=ROOT, env=dict(child_env() if env is None else env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log, start_new_session=new_session,
        )  # fmt: skip
        Child.registry.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        """CPU seconds (user and system) the process has used so far (Linux)."""
        return sum(proc_cpu_seconds(self.pid))

    def cpu_sys(self) -> float:
        return proc_cpu_seconds(self.pid)[1]

    def peak_rss_mib(self) -> float:
        return proc_status_kib(self.pid, "VmHWM") / 1024

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def announced(self, timeout: float = 20.0) -> str:
        """The URL of the ``READY <url>`` line the process prints once it listens (the
        SGLang double, the pass-through proxy); stops it and raises if none comes."""
        assert self.proc.stdout is not None, "started without stdout_pipe"
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and b"\n" not in buffer:
                if not sel.select(timeout=0.2):
                    if not self.alive():
                        break
                    continue
                data = os.read(self.proc.stdout.fileno(), 4096)
                if not data:
                    break
                buffer += data
        line = buffer.split(b"\n", 1)[0].decode(errors="replace").strip()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.log_tail()}")
        return line.split()[1]

    def stop(self, grace: float = 12.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; closes its pipe and log."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        if self in Child.registry:
            Child.registry.remove(self)

    @classmethod
    def stop_all(cls, grace: float = 5.0) -> None:
        for child in list(cls.registry):
            try:
                child.stop(grace)
            except Exception as exc:  # noqa: BLE001 - cleanup must go on for the others
                print(f"could not stop {child.name} (pid {child.pid}): {exc!r}", file=sys.stderr)


def start_double(name: str, log_dir: Path, *args: str,
                 env: Mapping[str, str] | None = None) -> tuple[Child, str]:  # fmt: skip
    """The SGLang double in its own process (``python -m scripts.lib.sglang_double --port 0
    ARGS``): the child and the URL it listens on."""
    child = Child(name, [sys.executable, "-m", DOUBLE_MODULE, "--port", "0", *args], log_dir,
                  env, stdout_pipe=True)  # fmt: skip
    return child, child.announced()


@dataclass
class Gateway:
    """A started gateway process (or anything else answering at ``url``)."""

    child: Child
    url: str
    #: ``host:port`` of its gRPC server; empty when gRPC is off.
    grpc_target: str = ""

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.2,
                   path: str = "/ready") -> bool:  # fmt: skip
        """Poll ``path`` until it answers 200: False if the process exited or the time ran out."""
        deadline = time.monotonic() + timeout
        while self.child.alive() and time.monotonic() < deadline:
            if http_status(self.url + path, timeout=2.0) == 200:
                return True
            time.sleep(interval)
        return False

    async def wait_ready_async(self, timeout: float = 60.0, interval: float = 0.2,
                               path: str = "/ready") -> bool:  # fmt: skip
        """:meth:`wait_ready` without blocking the event loop (each poll in a thread)."""
        deadline = time.monotonic() + timeout
        while self.child.alive() and time.monotonic() < deadline:
            if await asyncio.to_thread(http_status, self.url + path, 2.0) == 200:
                return True
            await asyncio.sleep(interval)
        return False

    def stop(self, grace: float = 12.0) -> None:
        self.child.stop(grace)


def launch_gateway(name: str, engine_urls: str, log_dir: Path, *, env_file: Path,
                   settings: Mapping[str, str] | None = None, port: int = 0,
                   grpc_port: int | None = 0, env: Mapping[str, str] | None = None,
                   python_args: Sequence[str] = (), new_session: bool = False,
                   append: bool = False) -> Gateway:  # fmt: skip
    """Start ``python [PYTHON_ARGS] -m lkn serve`` in front of ``engine_urls``, with its
    settings in the environment: ``env`` (else :func:`child_env`), then the env file
    (``LKN_ENV_FILE``: never a developer's config/.env unless asked for), the engines, the
    ports, then ``settings``. ``port`` and ``grpc_port`` 0: free ports; ``grpc_port`` None:
    gRPC off. Returns at once: wait with :meth:`Gateway.wait_ready`."""
    rest = port or free_port()
    values = dict(child_env() if env is None else env)
    values.update(LKN_ENV_FILE=str(env_file), LKN_ENGINE_URLS=engine_urls, LKN_PORT=str(rest))
    rpc = None if grpc_port is None else grpc_port or free_port()
    if rpc is None:
        values["LKN_GRPC_ENABLED"] = "false"
    else:
        values["LKN_GRPC_PORT"] = str(rpc)
    values.update(settings or {})
    argv = [sys.executable, *python_args, "-m", "lkn", "serve"]
    child = Child(name, argv, log_dir, values, new_session=new_session, append=append)
    return Gateway(child, f"http://127.0.0.1:{rest}", "" if rpc is None else f"127.0.0.1:{rpc}")


# ---- streamed answers -----------------------------------------------------------------------


def sse_event(raw: bytes) -> dict[str, Any] | None:
    """The JSON event of one line of a server-sent event stream; None for any other line
    (blank lines, comments, ``data: [DONE]``)."""
    line = raw.strip()
    if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
        return None
    event = json.loads(line[5:])
    return event if isinstance(event, dict) else None


class StreamedAnswer:
    """What one streamed chat completion brought, fed its lines as they arrive (from
    aiohttp's ``response.content`` or http.client's response alike).

    ``times``: seconds from ``started`` (``time.perf_counter()``; by default when this is
    made) to each delta with content (or, with ``reasoning``, reasoning content);
    ``text``: the content; ``usage``: the last usage seen."""

    def __init__(self, started: float | None = None, reasoning: bool = False) -> None:
        self.started = time.perf_counter() if started is None else started
        self.reasoning = reasoning
        self.pieces: list[str] = []
        self.times: list[float] = []
        self.usage: dict[str, Any] = {}

    def feed(self, raw: bytes) -> dict[str, Any] | None:
        """Read one line; returns its event (None for a line that is none)."""
        event = sse_event(raw)
        if event is None:
            return None
        if event.get("usage"):
            self.usage = event["usage"]
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if piece or (self.reasoning and delta.get("reasoning_content")):
                self.times.append(time.perf_counter() - self.started)
            if piece:
                self.pieces.append(piece)
        return event

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ttft(self) -> float | None:
        """Seconds to the first delta with content; None before there is one."""
        return self.times[0] if self.times else None
