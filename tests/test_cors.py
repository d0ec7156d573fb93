"""CORS (LKN_CORS_ORIGINS): preflight answered for allowed origins, others refused."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from lkn.config import ConfigError, load_settings
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast

ALLOWED = "http://127.0.0.1:3000"
CHAT = {"model": "smollm2", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}


async def test_preflight_from_an_allowed_origin_is_answered_without_credentials(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="secret",
                                           cors_origins=(ALLOWED,)))
    async with http.options(gw.v1 + "/chat/completions",
                            headers={"Origin": ALLOWED, **PREFLIGHT}) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert r.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
        assert "Origin" in r.headers["Vary"]
    # The real request: CORS headers on the streamed answer, the gateway's headers exposed.
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True},
                         headers={"Origin": ALLOWED, "Authorization": "Bearer secret"}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "X-LKN-Mode" in r.headers["Access-Control-Expose-Headers"]
        assert (await r.read()).rstrip().endswith(b"data: [DONE]")
    # Errors are readable by the page too (the key still applies).
    async with http.post(gw.v1 + "/chat/completions", json=CHAT,
                         headers={"Origin": ALLOWED}) as r:
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_other_origins_are_denied(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                           cors_origins=(ALLOWED,)))
    evil = "http://evil.example"
    async with http.options(gw.v1 + "/chat/completions", headers={"Origin": evil, **PREFLIGHT}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        assert (await r.json())["error"]["code"] == "origin_not_allowed"
    # A "simple" request needs no preflight: it is refused before reaching any engine.
    async with http.post(gw.v1 + "/chat/completions", data=b'{"messages": []}',
                         headers={"Origin": evil, "Content-Type": "text/plain"}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert not double.requests_to("/v1/chat/completions")


async def test_cors_is_off_by_default(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.options(gw.v1 + "/chat/completions", headers={"Origin": ALLOWED, **PREFLIGHT}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    # Clients that are not browsers send no Origin and are not affected.
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    # A page of the gateway itself (same origin) is not refused.
    async with http.get(gw.url + "/v1/models", headers={"Origin": gw.url}) as r:
        assert r.status == 200


async def test_any_origin(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, cors_origins=("*",)))
    async with http.options(gw.v1 + "/models", headers={"Origin": "https://x.example",
                                                        "Access-Control-Request-Method": "GET"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://x.example"


def test_origins_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert load_settings({}, empty).cors_origins == ()
    assert load_settings({"LKN_CORS_ORIGINS": "http://a:3000, https://b.example/"},
                         empty).cors_origins == ("http://a:3000", "https://b.example")
    with pytest.raises(ConfigError, match="LKN_CORS_ORIGINS"):
        load_settings({"LKN_CORS_ORIGINS": "http://a/path"}, empty)
