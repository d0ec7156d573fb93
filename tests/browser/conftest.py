"""Browser fixtures: real SGLang -> gateway process -> Open WebUI -> headless Chromium.

Every part is a real process started the way a person would start it (the project's
scripts), with its own ports and logs under ``artifacts/logs/browser``. The browser is
driven by ``driver.mjs`` (playwright-core on Debian's Chromium), one subprocess per
scenario; each scenario leaves a screenshot in ``artifacts/screenshots``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.browser.observe import READ_TIMEOUT, enable_request_log, wait_idle
from tests.livestack import (
    LiveEngine, LiveGateway, free_port, get_json, ready_gateway, run_script, script_env,
)

BROWSER_DIR = Path(__file__).resolve().parent
DRIVER = BROWSER_DIR / "driver.mjs"
SCREENSHOTS = ARTIFACTS / "screenshots"

#: Greedy decoding (the same answer every run) and short answers: the CPU model is slow.
WEBUI_MODEL_PARAMS = {"temperature": 0, "max_tokens": 48}


# ---- the stack ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_logs(live_dir: Path) -> Path:
    path = live_dir / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser_setup(browser_logs: Path) -> None:
    """Chromium from Debian and playwright-core from npm (skipped when present)."""
    run_script("setup_browser.sh", script_env(browser_logs), timeout=900)


@pytest.fixture(scope="session")
def browser_engine(live_sglang: LiveEngine) -> Iterator[LiveEngine]:
    """The session's SGLang engine, logging the prompts it receives while these tests run."""
    enable_request_log(live_sglang)
    yield live_sglang
    try:
        enable_request_log(live_sglang, on=False)
    except OSError:  # the engine is already gone: nothing to switch off
        pass


@pytest.fixture(scope="session")
def browser_gateway(browser_engine: LiveEngine, browser_logs: Path) -> Iterator[LiveGateway]:
    # Debug level: the suite reads each decision's details line (logger lkn.decision).
    # A long read timeout: on two busy cores Open WebUI's housekeeping prompts (the whole
    # chat in a task template) took 45-60 s before their first token, one over 120 s, which
    # the gateway then answered 504; what is tested here is the gateway, not the machine.
    with ready_gateway(browser_engine.url, browser_logs, LKN_READ_TIMEOUT=str(READ_TIMEOUT),
                       LKN_LOG_LEVEL="debug") as gateway:
        yield gateway


@dataclass
class LiveWebUI:
    url: str
    env: dict[str, str]


@contextmanager
def webui_on(gateway: LiveGateway, logs: Path,
             model_params: dict[str, Any] = WEBUI_MODEL_PARAMS) -> Iterator[LiveWebUI]:  # fmt: skip
    """Open WebUI from scripts/start_webui.sh in front of ``gateway`` (its defaults; a fresh
    data dir; its own free port; log and PID file in ``logs``), stopped after the block."""
    env = script_env(
        logs,
        WEBUI_PORT=str(free_port()),
        LKN_HOST="127.0.0.1",
        LKN_PORT=str(gateway.port),
        DEFAULT_MODEL_PARAMS=json.dumps(model_params),
    )
    # First use builds its environment (a few minutes); later starts take ~20-40 s.
    url = run_script("start_webui.sh", env, timeout=1200).strip().splitlines()[-1]
    try:
        yield LiveWebUI(url, env)
    finally:
        run_script("stop_webui.sh", env, timeout=60)


@pytest.fixture(scope="session")
def webui(browser_gateway: LiveGateway, browser_logs: Path) -> Iterator[LiveWebUI]:
    """Open WebUI from scripts/start_webui.sh (its defaults; a fresh data dir)."""
    with webui_on(browser_gateway, browser_logs) as started:
        yield started


# ---- the browser ------------------------------------------------------------------------


Browse = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def browse(browser_setup: None, webui: LiveWebUI, browser_logs: Path) -> Browse:
    """``browse(name, message, model=..., expect=..., show_usage=...)`` -> the driver's result.

    Runs one scenario in a new Chromium profile; the screenshot is
    ``artifacts/screenshots/<name>.png`` and the driver's log ``<browser logs>/driver-<name>.log``.
    Fails the test (with the page's text) when the page did not do what was asked.
    """
    return browser_on(webui, browser_logs)


def browser_on(webui: LiveWebUI, browser_logs: Path) -> Browse:
    """The ``browse`` function for one Open WebUI."""

    def run(name: str, message: str, *, timeout_s: float = 240, **options: Any) -> dict[str, Any]:
        spec = {
            "url": webui.url, "message": message, "timeout_ms": int(timeout_s * 1000),
            "screenshot": str(SCREENSHOTS / f"{name}.png"), **options,
        }
        proc = subprocess.run(
            ["node", str(DRIVER)], input=json.dumps(spec), capture_output=True, text=True,
            cwd=BROWSER_DIR, timeout=timeout_s + 120,
        )
        (browser_logs / f"driver-{name}.log").write_text(proc.stderr)
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise AssertionError(f"the browser driver printed nothing:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        if not result.get("ok"):
            raise AssertionError(
                f"browser scenario {name} failed: {result.get('failure')}\n"
                f"steps: {result.get('steps')}\npage text:\n{str(result.get('page_text'))[:2000]}"
            )
        return result

    return run


@pytest.fixture
def gateway_log(browser_gateway: LiveGateway) -> Callable[[], str]:
    """The gateway's log written since the test started (call it to read)."""
    wait_idle(browser_gateway)
    offset = len(browser_gateway.log_text())
    return lambda: browser_gateway.log_text()[offset:]


@pytest.fixture
def model(browser_gateway: LiveGateway) -> str:
    data = get_json(browser_gateway.url + "/v1/models")
    assert isinstance(data, dict)
    return str(data["data"][0]["id"])

