"""ENGINE_API_KEY: the gateway sends it to engines as a bearer token, on every route."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from lkn.config import load_settings
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast

CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "hello there"}]}


async def test_engine_key_is_sent_on_generation_and_readiness(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                           engine_api_key="engine-key-1"))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as response:
        assert response.status == 200
    async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.status == 200
        await response.read()
    paths = {r.path for r in double.received}
    assert {"/v1/chat/completions", "/ready", "/v1/models"} <= paths
    for received in double.received:
        assert received.headers.get("Authorization") == "Bearer engine-key-1", received.path


async def test_no_engine_key_no_header(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as response:
        assert response.status == 200
    assert all("Authorization" not in r.headers for r in double.received)


def test_engine_key_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert load_settings({"ENGINE_API_KEY": " k2 "}, empty).engine_api_key == "k2"
    assert load_settings({}, empty).engine_api_key is None
