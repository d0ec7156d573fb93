"""/lkn and /lkn/status.json: live numbers, self-contained HTML, the API key (Bearer or Basic)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import aiohttp
import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}


async def test_status_counts_decisions_and_engines(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    for text in ("hello", "Solve step by step: 2x = 4"):
        body = {"model": "smollm2", "max_tokens": 2, "messages": [{"role": "user", "content": text}]}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
    async with http.get(gw.url + "/lkn/status.json") as r:
        data = await r.json()
    assert data["mix"] == {"FLUIDO": 1.0, "ANALITICO": 1.0}
    assert data["engines"][0]["model"] == "smollm2" and data["engines"][0]["breaker"] == "closed"
    assert data["threshold"] == pytest.approx(0.6) and data["ready"] is True
    assert sum(p["fluido"] + p["analitico"] for p in data["series"]) == 2.0


async def test_page_is_self_contained(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.get(gw.url + "/lkn") as r:
        assert r.status == 200 and r.content_type == "text/html"
        html = await r.text()
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "<svg" in html and "setInterval(refresh" in html
    # Nothing loaded from elsewhere: no src/href attributes at all, no remote URL.
    assert not re.search(r"""\b(src|href)\s*=""", html)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


async def test_key_protects_the_page_as_bearer_or_basic(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="k1"))
    for path in ("/lkn", "/lkn/status.json"):
        async with http.get(gw.url + path) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(gw.url + path, headers=basic("wrong")) as r:
            assert r.status == 401
        async with http.get(gw.url + path, headers=basic("k1")) as r:
            assert r.status == 200
        async with http.get(gw.url + path, headers={"Authorization": "Bearer k1"}) as r:
            assert r.status == 200
    # Basic is accepted on the status page only.
    async with http.get(gw.v1 + "/models", headers=basic("k1")) as r:
        assert r.status == 401


async def test_a_policys_default_treatment_counts_as_fluido(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A policy giving every request the same sampling is the model's default, not care:
    the headers, the metrics and the page say FLUIDO, and the engine still gets it."""
    from lkn.care.policy import load_policy

    path = tmp_path / "all.json"
    path.write_text(json.dumps({
        "format": "lkn-policy/1", "name": "greedy-for-all", "model": "smollm2",
        "significance": 0.05,
        "rules": [{"signals": ["all"], "intervention": "sampling", "why": "measured"}]}))
    gw = await start_gateway(make_settings(
        double.url, grpc_enabled=False, decision={"policy": load_policy(path)}))
    for text in ("Name a color.", "Solve step by step: 2x = 4"):
        body = {"model": "smollm2", "max_tokens": 2,
                "messages": [{"role": "user", "content": text}]}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["X-LKN-Mode"] == "FLUIDO"
            assert r.headers["X-LKN-Intervention"] == "sampling"
            assert "default treatment" in r.headers["X-LKN-Policy"]
    sent = [r.body for r in double.requests_to("/v1/chat/completions")]
    assert all(b["temperature"] == 0.0 for b in sent)  # type: ignore[index]
    async with http.get(gw.url + "/lkn/status.json") as r:
        data = await r.json()
    assert data["mix"] == {"FLUIDO": 2.0, "ANALITICO": 0.0}
