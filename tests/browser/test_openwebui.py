"""Open WebUI in headless Chromium, through the gateway, to a real SGLang engine on the CPU.

A person's view (the chat page, its answers, tooltips and error banners; each scenario
leaves a screenshot in artifacts/screenshots) checked against what the gateway logged and
counted and what SGLang says it received. Open WebUI runs with its start script's defaults:
title, tag and follow-up generation on, usage shown. The scenario that stops the engine
comes last and starts it again.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from lkn.care.bodies import model_system_prompt

from tests.browser.conftest import Browse
from tests.browser.observe import (
    counted_since, decision_counts, decisions, enable_request_log, engine_request,
    ready_state, shows_engine_answer, system_prompt, wait_idle, wait_until,
)
from tests.livestack import LiveEngine, LiveGateway, wait_status

# The first test also brings the stack up, which on a new machine includes building Open
# WebUI's environment (minutes): a per-test limit above the project default, still bounded.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1500)]

INSTRUCTION = "Think carefully, verify your assumptions, and reason step-by-step before answering."


def analitico_system(model: str) -> str:
    """The system turn of an ANALITICO request that had none: the model's default, then the
    instruction."""
    default = model_system_prompt(model)
    return INSTRUCTION if default is None else f"{default}\n\n{INSTRUCTION}"

GatewayLog = Callable[[], str]


def chats(log: str) -> list[dict[str, str]]:
    """Decisions for chat messages (not Open WebUI's housekeeping requests)."""
    return [d for d in decisions(log) if d["strategy"] != "housekeeping"]


def wait_housekeeping(gateway: LiveGateway, log: GatewayLog, count: int) -> list[dict[str, str]]:
    """Open WebUI sends its title, follow-up and tag requests around the chat: wait for them."""
    wait_until(
        f"{count} housekeeping decisions",
        lambda: sum(d["strategy"] == "housekeeping" for d in decisions(log())) >= count,
        timeout=300,
    )
    wait_idle(gateway)
    return [d for d in decisions(log()) if d["strategy"] == "housekeeping"]


def test_a_simple_question_streams_a_fluido_answer_and_housekeeping_is_not_probed(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    before = decision_counts(browser_gateway)

    result = browse("chat_fluido", "What is the capital of France? Answer in one sentence.",
                    model=model)

    assert result["model_shown"] == model
    assert result["partials"] >= 1, "the answer appeared at once, not streamed"
    assert result["error_text"] == ""

    housekeeping = wait_housekeeping(browser_gateway, gateway_log, 3)
    [chat] = chats(gateway_log())
    assert (chat["mode"], chat["strategy"], chat["applied"]) == ("FLUIDO", "rules", "true")
    # Title, follow-ups and tags: recognised as housekeeping, answered FLUIDO, never probed.
    assert len(housekeeping) == 3
    assert all(d["mode"] == "FLUIDO" and d["probe_ms"] == "-" for d in housekeeping)
    assert counted_since(before, browser_gateway) == {
        ("FLUIDO", "rules", "true"): 1.0, ("FLUIDO", "housekeeping", "true"): 3.0,
    }
    assert "capital of France" not in gateway_log(), "the gateway logged prompt text"

    # The page shows what the engine generated for this very request (whatever a 135M model
    # answers), and the engine ran the prompt unchanged.
    engine_chat = engine_request(browser_engine, chat["rid"])
    assert shows_engine_answer(result["answer"], engine_chat), (result["answer"], engine_chat["out"])
    assert INSTRUCTION not in engine_chat["obj"]["text"]
    for d in housekeeping:
        seen = engine_request(browser_engine, d["rid"])
        assert "### Task:" in seen["obj"]["text"]
        assert INSTRUCTION not in seen["obj"]["text"]


def test_b_a_maths_question_goes_analitico_and_the_engine_gets_the_instruction(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    before = decision_counts(browser_gateway)

    result = browse("maths_analitico", "Solve step by step: what is 12 * 7 + 5?", model=model)

    assert result["answer"] and result["error_text"] == ""
    wait_housekeeping(browser_gateway, gateway_log, 3)
    [chat] = chats(gateway_log())
    assert (chat["mode"], chat["strategy"], chat["applied"]) == ("ANALITICO", "rules", "true")
    assert {"math", "multi_step"} <= set(chat["signals"].split(","))
    assert counted_since(before, browser_gateway)[("ANALITICO", "rules", "true")] == 1.0
    # Open WebUI sends no system message: the instruction joins the model's own default
    # system prompt, which SmolLM2's chat template would otherwise add.
    assert system_prompt(engine_request(browser_engine, chat["rid"])) == analitico_system(model)


def test_c_the_info_tooltip_shows_the_token_usage_the_engine_reported(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    result = browse("usage_tooltip", "Name one colour of the French flag.", model=model,
                    show_usage=True)

    usage = dict(re.findall(r"^(\w+): (\d+)$", result["usage_text"], re.MULTILINE))
    wait_housekeeping(browser_gateway, gateway_log, 3)
    [chat] = chats(gateway_log())
    engine_says = engine_request(browser_engine, chat["rid"])["out"]["meta_info"]
    assert int(usage["prompt_tokens"]) == engine_says["prompt_tokens"] > 0
    assert int(usage["completion_tokens"]) == engine_says["completion_tokens"] > 0
    assert int(usage["total_tokens"]) == (
        engine_says["prompt_tokens"] + engine_says["completion_tokens"]
    )


def test_e_the_analitico_model_variant_overrides_the_rules(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    variant = f"{model}+analitico"
    before = decision_counts(browser_gateway)

    result = browse("variant_analitico", "Hello! Say hi back in a few words.", model=variant)

    assert result["model_shown"] == variant
    assert result["answer"] and result["error_text"] == ""
    wait_housekeeping(browser_gateway, gateway_log, 3)
    [chat] = chats(gateway_log())
    assert (chat["mode"], chat["strategy"]) == ("ANALITICO", "override")
    assert chat["signals"] == "override"
    counted = counted_since(before, browser_gateway)
    assert counted[("ANALITICO", "override", "true")] == 1.0
    # Housekeeping on the variant stays cheap: no override for "### Task:" requests.
    assert counted[("FLUIDO", "housekeeping", "true")] == 3.0
    assert system_prompt(engine_request(browser_engine, chat["rid"])) == analitico_system(model)


def requests_counted(gateway: LiveGateway) -> dict[str, float]:
    """``lkn_requests_total`` of REST requests by outcome (status), from /metrics."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("lkn_requests_total{") and 'frontend="rest"' in line:
            outcome = re.search(r'outcome="(\d+)"', line)
            if outcome:
                counts[outcome[1]] = counts.get(outcome[1], 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_e_the_stop_button_is_counted_as_a_client_gone_never_a_server_error(
    browse: Browse, browser_gateway: LiveGateway, gateway_log: GatewayLog, model: str,
) -> None:
    before = requests_counted(browser_gateway)

    browse("stop_button", "Count from 1 to 300, one number per line.", model=model, stop=True)

    wait_idle(browser_gateway)
    grew = {k: v - before.get(k, 0.0) for k, v in requests_counted(browser_gateway).items()
            if v - before.get(k, 0.0)}
    assert grew.get("499", 0.0) >= 1, grew
    # The stopped chat itself (not Open WebUI's housekeeping around it, which a slow engine
    # may time out) is counted and logged as the client leaving.
    [chat] = chats(gateway_log())
    [line] = [x for x in gateway_log().splitlines() if f"request rid={chat['rid']} " in x]
    assert " status=499 outcome=client_gone " in line, line
    assert "500" not in grew, grew


def gateway_error(gateway: LiveGateway, model: str) -> str:
    """The message of the gateway's own error body for a chat request, right now."""
    status, response = _post_chat(gateway, model)
    assert status == 503 and response.headers.get("Retry-After"), status
    return str(json.loads(response.read())["error"]["message"])


def _post_chat(gateway: LiveGateway, model: str) -> tuple[int, Any]:
    body = json.dumps({"model": model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        gateway.url + "/v1/chat/completions", data=body.encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status), response
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc


def test_d_engine_down_shows_the_gateways_error_in_the_chat(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine, model: str,
) -> None:
    browser_engine.stop()
    try:
        wait_status(browser_gateway.url + "/ready", 503, 60)
        expected = gateway_error(browser_gateway, model)

        down = browse("engine_down_error", "Are you there?", model=model, expect="error",
                      timeout_s=60)

        # The banner is the gateway's OpenAI error message, not an exception string. Only
        # the "retry in N s" hint may differ between the two requests.
        def without_retry(message: str) -> str:
            return re.sub(r"retry in \d+ s", "retry in N s", message)

        assert down["answer"] == ""
        assert without_retry(down["error_text"]) == without_retry(expected)
        assert expected.startswith("no inference engine is available right now")
        assert not re.search(r"Traceback|Exception|aiohttp|Errno|ClientConnector",
                             down["error_text"])
    finally:
        browser_engine.start()
        enable_request_log(browser_engine)
    wait_status(browser_gateway.url + "/ready", 200, 180)


def test_d_the_first_message_after_the_engine_returns_is_answered(
    browse: Browse, browser_gateway: LiveGateway, browser_engine: LiveEngine,
    gateway_log: GatewayLog, model: str,
) -> None:
    # The engine's breaker opened while it was down, so it comes back half-open: Open
    # WebUI's title request, sent just before the chat, is the one trial request, and the
    # chat must wait for the trial's outcome, not fail.
    wait_status(browser_gateway.url + "/ready", 200, 180)

    back = browse("engine_back_chat", "What is the capital of France? Answer in one sentence.",
                  model=model)

    assert back["error_text"] == "" and back["answer"]
    wait_idle(browser_gateway)
    last = chats(gateway_log())[-1]
    assert (last["mode"], last["strategy"]) == ("FLUIDO", "rules")
    assert shows_engine_answer(back["answer"], engine_request(browser_engine, last["rid"]))
    assert ready_state(browser_gateway)["engines"][0]["breaker"] == "closed"
