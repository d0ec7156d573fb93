"""The status page (/lkn) in headless Chromium, with live numbers from real requests.

The gateway runs in front of the SGLang test double on a real socket; Chromium logs in as
a person would (the API key as HTTP Basic's password) and reads what the page shows. The
screenshot is artifacts/screenshots/status_page.png.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.browser.conftest import BROWSER_DIR, SCREENSHOTS
from tests.conftest import GatewayFactory, make_settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

KEY = "status-key-1"


async def open_page(url: str, name: str, key: str | None, wait_for: str) -> dict[str, Any]:
    spec = {"url": url, "key": key, "wait_for": wait_for, "timeout_ms": 60000,
            "screenshot": str(SCREENSHOTS / f"{name}.png")}
    proc = await asyncio.create_subprocess_exec(
        "node", str(BROWSER_DIR / "status_page.mjs"), cwd=BROWSER_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), 180)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def test_status_page_shows_engines_decisions_and_errors(
    browser_setup: None, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with SGLangDouble() as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key=KEY,
                                               decision={"strategy": "hybrid"}))
        auth = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            for text in ("hello there", "Solve step by step: 3x + 7 = 22", "hi again"):
                body = {"model": "smollm2", "max_tokens": 4,
                        "messages": [{"role": "user", "content": text}]}
                async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                    assert r.status == 200
            double.script(Fault.HTTP_500, Fault.HTTP_500)
            async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                assert r.status >= 500

        shown = await open_page(gw.url, "status_page", KEY, "ANALITICO share")
        assert shown["ok"], shown
        assert shown["external_requests"] == [], "the page loads nothing from elsewhere"
        [engine] = shown["engines"]
        assert engine[1] == "smollm2" and engine[2] == "yes" and engine[3] == "closed"
        numbers = shown["numbers"]
        assert int(float(numbers["n-ANALITICO"])) >= 1 and int(float(numbers["n-FLUIDO"])) >= 2
        assert int(float(numbers["n-errors"])) >= 1
        assert shown["svg_rects"] >= 2, "the charts have bars"
        assert "EngineError" in shown["text"] or "error" in shown["text"].lower()

        refused = await open_page(gw.url, "status_page_no_key", None, "ready")
        # Without the key the browser gets the 401 challenge and shows nothing of the page.
        assert not refused["ok"]
        assert refused.get("status") == 401 or "AUTH_CREDENTIALS" in refused["failure"]
