"""Two open chats that once ran away, replayed in Open WebUI against the CPU stack.

Open WebUI sends no ``max_tokens``; the chats are greedy (``temperature: 0``, what the
policy of the time gave them, and how a small model falls into loops). What the gateway
guarantees, whatever the 135M model answers on this machine:

- an answer the loop guard stops is aborted in the engine at once, ends with finish
  ``length``, and shows no more repetition than the guard's window;
- every answer ends within the default answer budget, also after its tab was closed
  (Open WebUI's backend reads on when the tab goes, and sends no abort).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lkn.config import Settings
from lkn.loopguard import LoopSettings, find_loop
from tests.browser.conftest import Browse, LiveWebUI, browser_on, webui_on
from tests.browser.observe import engine_request, wait_idle, wait_until
from tests.livestack import LiveEngine, LiveGateway

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

APPLES = ("Tengo 3 cajas con 12 manzanas cada una y regalo 7. ¿Cuántas me quedan? "
          "Explica paso a paso.")
TRAIN = ("A train leaves at 9:40 and arrives at 11:15. How many minutes is the trip? "
         "Think step by step.")
_REQUEST = re.compile(r"logger=lkn\.gateway request (.*)$", re.MULTILINE)
_FIELD = re.compile(r"(\w+)=(\S+)")


@pytest.fixture(scope="module")
def greedy_webui(browser_gateway: LiveGateway, browser_logs: Path) -> Iterator[LiveWebUI]:
    """A second Open WebUI, on its defaults but greedy: no max_tokens reaches the gateway."""
    logs = browser_logs / "chats"
    logs.mkdir(parents=True, exist_ok=True)
    with webui_on(browser_gateway, logs, model_params={"temperature": 0}) as started:
        yield started


@pytest.fixture(scope="module")
def browse_greedy(browser_setup: None, greedy_webui: LiveWebUI, browser_logs: Path) -> Browse:
    return browser_on(greedy_webui, browser_logs / "chats")


def chat_request(log: str, after: int) -> dict[str, str] | None:
    """The gateway's log line of the first chat answer (not housekeeping) after ``after``."""
    for match in _REQUEST.finditer(log, after):
        fields = dict(_FIELD.findall(match.group(1)))
        if fields.get("route") == "chat" and fields.get("strategy") not in (None, "housekeeping"):
            return fields
    return None


def quiet_offset(gateway: LiveGateway) -> int:
    """Where this test's log starts: after every earlier request has ended."""
    wait_idle(gateway)
    return len(gateway.log_text())


def finished_chat(gateway: LiveGateway, offset: int, timeout: float) -> dict[str, str]:
    found: dict[str, str] = {}

    def logged() -> bool:
        found.update(chat_request(gateway.log_text(), offset) or {})
        return bool(found)

    wait_until("the chat answer's request line in the gateway log", logged, timeout)
    return found


def default_budget() -> int:
    return Settings().default_max_tokens


def aborts_in(engine: LiveEngine) -> int:
    """How many ``/abort_request`` calls the engine has logged (SGLang writes no finished
    record for a running request that was aborted)."""
    return engine.log_text().count('"POST /abort_request')


def test_a_greedy_step_by_step_answer_is_bounded_and_a_loop_is_cut(
    browse_greedy: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine, model: str,
) -> None:
    offset = quiet_offset(browser_gateway)
    aborts = aborts_in(browser_engine)
    result = browse_greedy("chat_apples_es", APPLES, model=model, timeout_s=600)
    line = finished_chat(browser_gateway, offset, timeout=120)
    assert line["outcome"] == "success" and line["status"] == "200"
    if line["loop"] == "1":
        # Stopped by the guard: the engine was told to drop the request at once, and the
        # page shows at most the guard's window of repetition.
        log = browser_gateway.log_text()[offset:]
        assert f"engine abort sent rid={line['rid']}" in log
        wait_until("the engine's /abort_request", lambda: aborts_in(browser_engine) > aborts,
                   timeout=60)
        settings = LoopSettings()
        shown = find_loop(result["answer"][-4 * settings.window:], settings)
        assert shown is None or shown.span <= settings.window + 2 * settings.check_every
    else:
        meta = engine_request(browser_engine, line["rid"])["out"]["meta_info"]
        assert meta["completion_tokens"] <= default_budget()
        assert meta["finish_reason"]["type"] in ("stop", "length")


def test_a_closed_tab_ends_within_the_default_budget(
    browse_greedy: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine, model: str,
) -> None:
    offset = quiet_offset(browser_gateway)
    result = browse_greedy("chat_train_left_en", TRAIN, model=model, leave=True)
    assert result["left"] is True
    # 1024 tokens at a few tokens a second on two busy cores: minutes, never unbounded.
    line = finished_chat(browser_gateway, offset, timeout=900)
    assert line["status"] == "200"
    if line["loop"] == "1":  # the guard ended it, long before the budget
        assert f"engine abort sent rid={line['rid']}" in browser_gateway.log_text()[offset:]
    else:
        meta = engine_request(browser_engine, line["rid"])["out"]["meta_info"]
        assert meta["completion_tokens"] <= default_budget()
        assert meta["finish_reason"]["type"] in ("stop", "length")
