"""What the gateway and the engine did, read from their logs and metrics (browser tests)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.livestack import LiveEngine, LiveGateway, get_json

_FIELD = re.compile(r"(\w+)=(\S+)")


def enable_request_log(engine: LiveEngine, on: bool = True) -> None:
    """Make SGLang log every request it receives, with its full prompt (JSON lines).

    SGLang's own record of what reached the engine (``--log-requests`` switched on at run
    time, so the shared engine needs no special start); it lasts until the engine stops
    or until this is called with ``on=False``.
    """
    body = {"log_requests": on, "log_requests_level": 3, "log_requests_format": "json"}
    request = urllib.request.Request(
        engine.url + "/configure_logging", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def decisions(log_text: str) -> list[dict[str, str]]:
    """The gateway's decision log lines (``logger=lkn.decision decision ...``) as fields."""
    return [
        dict(_FIELD.findall(line.split(" decision ", 1)[1]))
        for line in log_text.splitlines()
        if "logger=lkn.decision" in line and " decision " in line
    ]


def decision_counts(gateway: LiveGateway) -> dict[tuple[str, str, str], float]:
    """``lkn_decisions_total`` from the gateway's /metrics, by (mode, strategy, applied)."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("lkn_decisions_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels["mode"], labels["strategy"], labels["applied"])
            counts[key] = float(line.rsplit(" ", 1)[1])
    return counts


def counted_since(
    before: dict[tuple[str, str, str], float], gateway: LiveGateway
) -> dict[tuple[str, str, str], float]:
    after = decision_counts(gateway)
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def engine_requests(engine: LiveEngine) -> dict[str, dict[str, Any]]:
    """SGLang's record of each finished request, by rid (see :func:`enable_request_log`)."""
    found: dict[str, dict[str, Any]] = {}
    for line in engine.log_text().splitlines():
        if '"event": "request.finished"' not in line:
            continue
        record = json.loads(line[line.index("{"):])
        found[record["rid"]] = record
    return found


def engine_request(engine: LiveEngine, rid: str, timeout: float = 90) -> dict[str, Any]:
    """SGLang's record of request ``rid``, waiting for it: SGLang writes it once the request
    has finished on its side, which can be after the client saw the end of the answer."""
    found: dict[str, Any] = {}

    def logged() -> bool:
        found.update(engine_requests(engine).get(rid, {}))
        return bool(found)

    wait_until(f"SGLang's log entry for request {rid}", logged, timeout)
    return found


def words(text: str) -> list[str]:
    """The words of a text, letters only: what survives Markdown rendering in the page."""
    return re.findall(r"[^\W\d_]+", text.lower())


def shows_engine_answer(shown: str, engine_record: dict[str, Any]) -> bool:
    """Whether the page shows the answer the engine generated: its words, in order (the page
    may add words of its own around them, e.g. a code block's "Copy" button)."""
    wanted = words(str(engine_record["out"]["text"]))
    remaining = iter(words(shown))
    return bool(wanted) and all(word in remaining for word in wanted)


def system_prompt(engine_record: dict[str, Any]) -> str:
    """The system turn of the prompt the engine ran (SmolLM2's ChatML template)."""
    text = str(engine_record["obj"]["text"])
    match = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", text, re.DOTALL)
    return match.group(1) if match else ""


def ready_state(gateway: LiveGateway) -> dict[str, Any]:
    try:
        data = get_json(gateway.url + "/ready")
    except urllib.error.HTTPError as exc:  # 503 while no engine is ready; same body
        data = json.loads(exc.read())
    assert isinstance(data, dict)
    return data


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


#: The browser gateway's LKN_READ_TIMEOUT: longer than any answer on a busy 2-core machine.
READ_TIMEOUT = 600.0


def wait_idle(gateway: LiveGateway, timeout: float = READ_TIMEOUT + 60) -> None:
    """Until no request is in flight in the gateway (twice in a row, one second apart)."""
    quiet = 0

    def idle() -> bool:
        nonlocal quiet
        busy = sum(int(e.get("in_flight", 0)) for e in ready_state(gateway).get("engines", []))
        quiet = quiet + 1 if busy == 0 else 0
        return quiet >= 2

    wait_until("the gateway to be idle", idle, timeout, every=1.0)
