"""Real processes for end-to-end tests: engines, the gateway and Open WebUI.

Each part is started through the project's own scripts (so the tests exercise them), with
its own free port and its own log/PID directory under the test session's temp dir, and is
stopped at the end of the session. Nothing here is a mock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from scripts.lib.benchkit import ROOT, Gateway, free_port, http_status, launch_gateway

__all__ = ["ROOT", "LiveEngine", "LiveGateway", "free_port", "get_json", "http_status",
           "ready_gateway", "run_script", "script_env", "wait_status"]


def get_json(url: str, timeout: float = 10.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_status(url: str, status: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while http_status(url, timeout=2.0) != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {status} within {timeout:.0f} s")
        time.sleep(0.25)


def script_env(log_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for the project's scripts: isolated logs, no developer config/.env."""
    env = dict(os.environ)
    env.update(
        LKN_LOG_DIR=str(log_dir),
        LKN_ENV_FILE=str(ROOT / "config" / ".env.example"),
        # The live tests check the decisions' mechanics; the shipped policy (LKN_POLICY=auto)
        # would give every SmolLM2 request its measured intervention.
        LKN_POLICY="none",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def run_script(name: str, env: dict[str, str], timeout: float) -> str:
    """Run ``scripts/<name>`` and return its stdout; raise with its output on failure."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / name)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@dataclass
class LiveEngine:
    """A real engine started by scripts/start_engine.sh (``kind``: sglang or llamacpp)."""

    kind: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    start_timeout: float = 900.0
    #: The model name it reports on /v1/models (None: the script's default).
    served_name: str | None = None
    #: More of start_engine.sh's settings (ENGINE_MODEL, ENGINE_LLAMACPP_THREADS ...).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.log_dir / ("engine.pid" if self.kind == "sglang" else "engine-llamacpp.pid")

    @property
    def log_file(self) -> Path:
        return self.log_dir / ("engine.log" if self.kind == "sglang" else "engine-llamacpp.log")

    def env(self) -> dict[str, str]:
        extra = {"ENGINE_KIND": self.kind, "ENGINE_DEVICE": "cpu"}
        if self.kind == "sglang":
            extra["ENGINE_PORT"] = str(self.port)
            # Engine-side evidence for the tests: Prometheus counters (aborted requests ...).
            extra["ENGINE_EXTRA_ARGS"] = os.environ.get("ENGINE_EXTRA_ARGS", "--enable-metrics")
        else:
            extra["ENGINE_LLAMACPP_PORT"] = str(self.port)
            extra["ENGINE_PORT"] = str(self.port)
        if self.served_name is not None:
            extra["ENGINE_SERVED_MODEL_NAME"] = self.served_name
        extra.update(self.extra_env)
        return script_env(self.log_dir, **extra)

    def start(self) -> None:
        run_script("start_engine.sh", self.env(), self.start_timeout)

    def stop(self) -> None:
        run_script("stop_engine.sh", self.env(), 120)

    @contextmanager
    def running(self, fresh: bool = False) -> Iterator[LiveEngine]:
        """Started for the ``with`` block, stopped after it. ``fresh``: first stop one left
        by an interrupted earlier run (its PID file would make the start refuse)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.stop()
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def kill(self) -> None:
        """Kill the engine abruptly (SIGKILL to its whole process group)."""
        pid = self.pid()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while http_status(self.url + "/health", timeout=1.0) != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the engine still answers after SIGKILL")
            time.sleep(0.2)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@dataclass
class LiveGateway:
    """The gateway as its own process (``python -m lkn serve``), like in production."""

    engine_urls: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    gateway: Gateway | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "gateway.log"

    def start(self, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.gateway = launch_gateway(
            "gateway", self.engine_urls, self.log_dir, env=script_env(self.log_dir),
            env_file=ROOT / "config" / ".env.example", port=self.port, grpc_port=self.grpc_port,
            settings={"LKN_HEALTH_INTERVAL": "0.5", **self.extra_env},
            new_session=True, append=True,
        )  # fmt: skip
        if not self.gateway.wait_ready(timeout, interval=0.1, path="/health"):
            self.stop()
            raise RuntimeError("the gateway did not start:\n" + self.log_text()[-3000:])

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop(grace=20.0)
        self.gateway = None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@contextmanager
def ready_gateway(engine_urls: str, log_dir: Path, **extra_env: str) -> Iterator[LiveGateway]:
    """A gateway process in front of ``engine_urls``, once its pool is ready; stopped after."""
    gateway = LiveGateway(engine_urls, log_dir, extra_env=extra_env)
    gateway.start()
    try:
        wait_status(gateway.url + "/ready", 200, 60)
        yield gateway
    finally:
        gateway.stop()
