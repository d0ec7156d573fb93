"""What a client or a web page can reach and read: the host allow-list against DNS rebinding,
one name per engine, no file paths and no empty headers in the answers."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
import pytest

from lkn.config import ConfigError, Settings, load_settings
from lkn.care.policy import load_policy
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings
from tests.livestack import ROOT

pytestmark = pytest.mark.fast

CHAT = {"model": "smollm2", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
#: Every path a page could want to read, each with its method.
PATHS = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/ready"),
         ("GET", "/lkn/status.json"), ("GET", "/metrics"), ("GET", "/v1/models"),
         ("GET", "/health")]


def port_of(gw: GatewayUnderTest) -> int:
    return int(gw.url.rsplit(":", 1)[1])


async def call(http: aiohttp.ClientSession, gw: GatewayUnderTest, method: str, path: str,
               headers: dict[str, str]) -> tuple[int, bytes]:
    body = {**CHAT, "prompt": "hi"} if path == "/v1/completions" else CHAT
    async with http.request(method, gw.url + path, headers=headers,
                            json=body if method == "POST" else None) as r:
        return r.status, await r.read()


# ---- the host allow-list ----------------------------------------------------------------


async def test_a_dns_rebinding_page_is_refused_before_it_reaches_anything(
    gw: GatewayUnderTest, double: SGLangDouble, http: aiohttp.ClientSession
) -> None:
    """``rebind.example`` resolving to 127.0.0.1: the page's requests are same-origin to the
    browser (Host and Origin agree), so only the Host check can refuse them."""
    port = port_of(gw)
    rebinding = {"Host": f"rebind.example:{port}", "Origin": f"http://rebind.example:{port}"}
    for method, path in PATHS:
        status, raw = await call(http, gw, method, path, rebinding)
        assert status == 421, (path, status, raw[:200])
        error = json.loads(raw)["error"]
        assert error["code"] == "host_not_allowed" and error["type"] == "invalid_request_error"
        assert b"engine" not in raw and b"lkn_" not in raw
    # Without an Origin (a rebinding page's GET may send none) it is refused the same way.
    status, _ = await call(http, gw, "GET", "/ready", {"Host": f"rebind.example:{port}"})
    assert status == 421
    assert not double.requests_to("/v1/chat/completions")
    assert not double.requests_to("/v1/completions")
    # The gateway's own loopback names pass, with their own Origin (same-origin) or none.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        origin = {"Origin": f"http://{host}"}
        for method, path in PATHS:
            status, raw = await call(http, gw, method, path, {"Host": host, **origin})
            assert status == 200, (host, path, status, raw[:200])
    assert len(double.requests_to("/v1/chat/completions")) == 4  # one per loopback name


async def test_a_request_without_a_host_header_is_refused(gw: GatewayUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gw))
    writer.write(b"GET /ready HTTP/1.0\r\n\r\n")
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.0 421") or answer.startswith(b"HTTP/1.1 421"), answer[:100]
    assert b'"host_not_allowed"' in answer


async def test_allowed_hosts_replace_the_defaults_and_star_allows_any(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    named = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                              allowed_hosts=("gateway.internal", "[fd00::5]")))
    for host, expected in (("gateway.internal:8000", 200), ("GATEWAY.internal", 200),
                           ("[fd00::5]:8000", 200), ("gateway.internal.evil", 421),
                           (f"127.0.0.1:{port_of(named)}", 421)):
        status, _ = await call(http, named, "GET", "/ready", {"Host": host})
        assert status == expected, host
    any_host = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                                 allowed_hosts=("*",)))
    status, _ = await call(http, any_host, "GET", "/ready", {"Host": "whatever.example"})
    assert status == 200


def test_the_default_allow_list_is_loopback_and_the_bound_address() -> None:
    from lkn.rest.hosts import allowed_hosts, host_of

    assert allowed_hosts(Settings()) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(Settings(host="10.1.2.3")) == {"localhost", "127.0.0.1", "::1",
                                                         "10.1.2.3"}
    for every in ("0.0.0.0", "::"):
        assert allowed_hosts(Settings(host=every)) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(Settings(allowed_hosts=("*",))) is None
    assert host_of("[::1]:8000") == "::1" and host_of("LocalHost.:80") == "localhost"
    assert host_of("[::1]x") != "::1"


def test_allowed_hosts_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert load_settings({}, empty).allowed_hosts == ()
    assert load_settings({"LKN_ALLOWED_HOSTS": " gw.example , [::1], 10.0.0.2 "},
                         empty).allowed_hosts == ("gw.example", "[::1]", "10.0.0.2")
    assert load_settings({"LKN_ALLOWED_HOSTS": "*"}, empty).allowed_hosts == ("*",)
    for bad in ("http://gw.example", "gw.example:8000", "gw example", "[gw.example]"):
        with pytest.raises(ConfigError, match="LKN_ALLOWED_HOSTS"):
            load_settings({"LKN_ALLOWED_HOSTS": bad}, empty)


# ---- names and leaks --------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [("name", "engine-1"), ("address", None)])
async def test_one_engine_has_one_name_in_the_header_ready_status_page_and_logs(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    gateway_log: io.StringIO, header: str, expected: str | None,
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                           engine_header=header))
    name = expected or double.url.split("//")[1]
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.status == 200 and r.headers["X-LKN-Engine"] == name
        rid = r.headers["X-Request-Id"]
    async with http.get(gw.url + "/ready") as r:
        [engine] = (await r.json())["engines"]
        assert engine["engine"] == name
        assert engine["url"] == double.url  # the address, for the operator, beside the name
    async with http.get(gw.url + "/lkn/status.json") as r:
        assert [e["engine"] for e in (await r.json())["engines"]] == [name]
    async with http.get(gw.url + "/metrics") as r:
        metrics = await r.text()
    assert f'engine="{name}"' in metrics
    if expected is not None:
        assert double.url.split("//")[1] not in metrics
    lines = [line for line in gateway_log.getvalue().splitlines() if f"rid={rid}" in line]
    assert lines and all(f"engine={name}" in line for line in lines if "engine=" in line)


async def test_keyless_ready_names_policy_files_without_their_paths(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({
        "format": "lkn-policy/1", "name": "mine", "model": "smollm2", "significance": 0.05,
        "rules": [{"signals": ["math"], "intervention": "sampling", "why": "measured"}]}))
    empty = tmp_path / "empty.env"
    empty.write_text("")
    shipped = load_settings({}, env_file=empty)  # LKN_POLICY=auto: the shipped policies
    for decision in ({"policy": load_policy(path), "policy_setting": str(path)},
                     {"policy_setting": "auto",
                      "shipped_policies": shipped.decision.shipped_policies}):
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               decision=decision))
        for where in ("/ready", "/v1/lkn/probe"):
            method = "POST" if where.endswith("probe") else "GET"
            async with http.request(method, gw.url + where, json=CHAT) as r:
                text = await r.text()
                assert r.status == 200, text
            assert str(tmp_path) not in text and str(ROOT) not in text, where
            assert "/lkn/care/policies/" not in text, where
            care = json.loads(text)["care"]
            files = [p["file"] for p in ([care["policy"]] if care.get("policy")
                                         else care["policies"])]
            assert files and all("/" not in f and f.endswith(".json") for f in files)


async def test_no_score_means_no_score_header_never_an_empty_one(
    gw: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    for stream in (False, True):
        async with http.post(gw.v1 + "/chat/completions", json={**CHAT, "stream": stream}) as r:
            assert r.status == 200 and r.headers["X-LKN-Strategy"] == "rules"
            assert "X-LKN-Score" not in r.headers
            assert all(value.strip() for value in r.headers.values()), dict(r.headers)
            await r.read()
    async with http.post(gw.v1 + "/lkn/probe", json=CHAT) as r:
        assert "X-LKN-Score" not in r.headers
        assert all(value.strip() for value in r.headers.values()), dict(r.headers)
