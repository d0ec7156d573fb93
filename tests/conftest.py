"""Shared fixtures: the SGLang test double and gateways on real sockets (port 0)."""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lkn.breaker import Clock
from lkn.config import ClientLimits, DecisionSettings, EngineSpec, Settings
from lkn.gateway import Gateway
from lkn.logs import LogfmtFormatter
from lkn.server import running
from scripts.lib.sglang_double import SGLangDouble
from tests.livestack import ROOT, LiveEngine

#: Test artefacts (screenshots, live process logs) land here; CI keeps this folder.
ARTIFACTS = ROOT / "artifacts"


#: Client limits that let any client name its care (X-LKN-Intervention), as for evaluations.
CARE_OPEN = ClientLimits(interventions=True)


def make_settings(*urls: str, decision: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings for a test gateway on port 0 in front of the given engine URLs."""
    base: dict[str, Any] = {
        "engines": tuple(
            EngineSpec(u.split("=", 1)[1], u.split("=", 1)[0]) if "=" in u else EngineSpec(u)
            for u in urls
        ),
        "port": 0,
        "grpc_port": 0,
        "health_interval": 0.2,
        "health_timeout": 1.0,
        "read_timeout": 5.0,
        "shutdown_grace": 1.0,
    }
    base.update(overrides)
    if decision:
        base["decision"] = dataclasses.replace(DecisionSettings(), **decision)
    return Settings(**base)


@dataclass
class GatewayUnderTest:
    gateway: Gateway
    settings: Settings
    url: str
    grpc_port: int | None

    @property
    def v1(self) -> str:
        return self.url + "/v1"


GatewayFactory = Callable[..., Awaitable[GatewayUnderTest]]


@pytest.fixture
def gateway_log() -> Iterator[io.StringIO]:
    """The log lines as the gateway writes them (logfmt, INFO: the default level)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def double() -> AsyncIterator[SGLangDouble]:
    async with SGLangDouble() as fake:
        yield fake


@pytest.fixture
async def start_gateway() -> AsyncIterator[GatewayFactory]:
    """``await start_gateway(settings)`` -> a running gateway (REST, and gRPC if enabled)."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings, clock: Clock | None = None) -> GatewayUnderTest:
            run = await stack.enter_async_context(running(settings, clock or time.monotonic))
            return GatewayUnderTest(
                run.gateway, settings, f"http://127.0.0.1:{run.rest_port}", run.grpc_port
            )

        yield start


@pytest.fixture
async def gw(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    """A gateway (REST only) in front of one test double."""
    return await start_gateway(make_settings(double.url, grpc_enabled=False))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---- live processes (marked e2e / browser; started once per session) --------------------


@pytest.fixture(scope="session")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where live processes keep their logs and PID files (kept as test artefacts)."""
    path = ARTIFACTS / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def live_sglang(live_dir: Path) -> Iterator[LiveEngine]:
    """A real SGLang engine on the CPU (SmolLM2-135M-Instruct), shared by the session.

    Tests that stop or kill it must start it again before they end.
    """
    with LiveEngine("sglang", live_dir).running() as engine:
        yield engine


@pytest.fixture(scope="session")
def live_llamacpp(live_dir: Path) -> Iterator[LiveEngine]:
    """A real llama.cpp server (xllamacpp) with the same SmolLM2 GGUF."""
    with LiveEngine("llamacpp", live_dir, start_timeout=180).running() as engine:
        yield engine
