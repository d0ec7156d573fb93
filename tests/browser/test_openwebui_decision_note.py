"""The decision note (``LKN_DECISION_NOTE``) as a person sees it in Open WebUI.

The same stack as test_openwebui.py (real SGLang on the CPU, the gateway process, Open WebUI,
headless Chromium). With the setting off (the default) an ANALITICO reply has no reasoning
block; with it on (the same gateway restarted on its port, so Open WebUI keeps its
connection) the reply opens with a folded reasoning block whose text, once clicked open, is
the gateway's note, while the answer outside the block is the engine's text without it.
What the gateway decided is read from its own decision log, never from the model's answer.
Screenshots: artifacts/screenshots/decision_note_off.png, decision_note_folded.png,
decision_note_unfolded.png.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.browser.conftest import SCREENSHOTS, Browse
from tests.browser.observe import (
    decisions, engine_request, shows_engine_answer, wait_idle, wait_until,
)
from tests.livestack import LiveEngine, LiveGateway, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

GatewayLog = Callable[[], str]

#: The rules decide this ANALITICO (maths and multi-step cues; test_openwebui.py checks it).
ANALITICO_PROMPT = "Solve step by step: what is 12 * 7 + 5?"


def restart(gateway: LiveGateway, **env: str | None) -> None:
    """Restart the gateway process on the same ports with changed settings (None: unset)."""
    wait_idle(gateway)
    gateway.stop()
    for key, value in env.items():
        if value is None:
            gateway.extra_env.pop(key, None)
        else:
            gateway.extra_env[key] = value
    gateway.start()
    wait_status(gateway.url + "/ready", 200, 120)


@pytest.fixture
def note_on(browser_gateway: LiveGateway) -> Iterator[LiveGateway]:
    """The session's gateway with ``LKN_DECISION_NOTE=true``, back to its defaults after."""
    restart(browser_gateway, LKN_DECISION_NOTE="true")
    try:
        yield browser_gateway
    finally:
        restart(browser_gateway, LKN_DECISION_NOTE=None)


def analitico_chat(gateway: LiveGateway, log: GatewayLog) -> dict[str, str]:
    """The chat's decision (Open WebUI's title, tag and follow-up requests waited for)."""
    wait_until(
        "Open WebUI's 3 housekeeping requests",
        lambda: sum(d["strategy"] == "housekeeping" for d in decisions(log())) >= 3,
        timeout=300,
    )
    wait_idle(gateway)
    [chat] = [d for d in decisions(log()) if d["strategy"] != "housekeeping"]
    assert (chat["mode"], chat["strategy"], chat["applied"]) == ("ANALITICO", "rules", "true")
    assert {"math", "multi_step"} <= set(chat["signals"].split(","))
    return chat


def test_without_the_setting_an_analitico_reply_has_no_reasoning_block(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    assert "LKN_DECISION_NOTE" not in browser_gateway.extra_env  # the default: off

    result = browse("decision_note_off", ANALITICO_PROMPT, model=model)

    assert result["error_text"] == "" and result["answer"]
    chat = analitico_chat(browser_gateway, gateway_log)
    assert result["blocks"] == [], result["blocks"]
    assert "L-kn" not in result["reply_text"] and "Thought" not in result["reply_text"]
    assert shows_engine_answer(result["answer"], engine_request(browser_engine, chat["rid"]))
    print(f"\nscreenshot: {SCREENSHOTS / 'decision_note_off.png'}")


def test_with_the_setting_the_note_is_a_folded_reasoning_block_above_the_answer(
    browse: Browse, note_on: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    folded_png = SCREENSHOTS / "decision_note_folded.png"

    result = browse("decision_note_unfolded", ANALITICO_PROMPT, model=model,
                    screenshot_folded=str(folded_png), unfold=True)

    assert result["error_text"] == "" and result["answer"]
    chat = analitico_chat(note_on, gateway_log)
    # Folded: one reasoning block ("Thought ..."), closed, its text not in the page at all.
    [block] = result["blocks"]
    assert block["label"].startswith("Thought"), block
    assert not block["expanded"] and block["body"] == ""
    assert "L-kn" not in result["reply_text"]
    # Clicked open: the block's text is the gateway's note for this decision.
    opened = result["unfolded"]
    assert opened["expanded"], opened
    note = opened["body"]
    assert note.startswith("L-kn: ANALITICO by rules ("), note
    assert "maths" in note and "multi-step" in note
    assert note.endswith("verification instruction added"), note
    # The answer outside the block is the engine's own text; the note is not part of it.
    assert "L-kn" not in result["answer"] and "L-kn" not in opened["answer"]
    engine_chat = engine_request(browser_engine, chat["rid"])
    assert shows_engine_answer(result["answer"], engine_chat)
    assert "L-kn" not in engine_chat["obj"]["text"], "the note reached the engine"
    print(f"\nscreenshots: {folded_png} {SCREENSHOTS / 'decision_note_unfolded.png'}")
