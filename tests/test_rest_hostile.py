"""Hostile REST input gets a 4xx with an OpenAI error body, never a 5xx; exposure is minimal."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from lkn.rest.body import MAX_DEPTH
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
JSON = {"Content-Type": "application/json"}


async def post_raw(http: aiohttp.ClientSession, url: str, data: bytes,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    async with http.post(url, data=data, headers=JSON if headers is None else headers) as r:
        body = await r.json(content_type=None)
        return r.status, body


def nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(("data", "code"), [
    (nested(MAX_DEPTH + 1), "invalid_json"),
    (nested(995), "invalid_json"),
    (nested(100_000), "invalid_json"),
    (b'{"model": "m", "messages": "\xff\xfe"}', "invalid_encoding"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
     "invalid_encoding"),  # a UTF-8 encoded surrogate
    (b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_json"),
    (b'{"\\udfff": 1, "messages": [{"role": "user", "content": "x"}]}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}], "top_p": Infinity}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}], "extra": -Infinity}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}], "extra": 1e999}', "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}], "n": ' + b"9" * 5000 + b"}",
     "invalid_json"),
    (b"", "invalid_json"),
    (b"\xef\xbb\xbf{}", "invalid_json"),
])
async def test_bodies_that_are_not_json_get_a_400(
    gw: GatewayUnderTest, http: aiohttp.ClientSession, data: bytes, code: str
) -> None:
    status, body = await post_raw(http, gw.v1 + "/chat/completions", data)
    assert status == 400, body
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == code
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("field", "value"), [
    ("min_p", 1.5), ("min_p", -0.1), ("top_k", -2), ("top_k", 0), ("top_k", 1.5),
    ("repetition_penalty", 0), ("repetition_penalty", -1), ("repetition_penalty", 2.5),
    ("seed", "x"), ("temperature", 3), ("top_p", 1.01),
])
async def test_documented_ranges_are_enforced(
    gw: GatewayUnderTest, http: aiohttp.ClientSession, field: str, value: object
) -> None:
    status, body = await post_raw(http, gw.v1 + "/chat/completions",
                                  json.dumps({**CHAT, field: value}).encode())
    assert status == 400 and body["error"]["param"] == field  # type: ignore[index]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
async def test_a_body_that_is_not_declared_json_gets_a_415(
    gw: GatewayUnderTest, http: aiohttp.ClientSession, content_type: str
) -> None:
    status, body = await post_raw(http, gw.v1 + "/chat/completions", json.dumps(CHAT).encode(),
                                  {"Content-Type": content_type})
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"  # type: ignore[index]


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json; charset=utf-8"},
                                     {"Content-Type": "application/vnd.api+json"}])
async def test_json_media_types_and_none_at_all_are_accepted(
    gw: GatewayUnderTest, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with http.post(gw.v1 + "/chat/completions", data=json.dumps(CHAT).encode(),
                         headers=headers, skip_auto_headers=["Content-Type"]) as r:
        assert r.status == 200, await r.text()


async def raw_http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: -1\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
])
async def test_malformed_http_is_answered_in_the_openai_error_shape(
    gw: GatewayUnderTest, request_bytes: bytes
) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    answer = await raw_http(port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:200]
    assert b"Server: lkn" in head and b"aiohttp" not in head
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and "malformed HTTP" in error["message"]
    assert gw.gateway.ready()


async def test_no_server_version_banner(gw: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    for path in ("/health", "/v1/models", "/nope"):
        async with http.get(gw.url + path) as r:
            assert r.headers["Server"] == "lkn"


@pytest.fixture
async def keyed(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    return await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="s3cret"))


async def test_with_a_key_metrics_and_ready_details_need_it(
    keyed: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    async with http.get(keyed.url + "/health") as r:
        assert r.status == 200
    async with http.get(keyed.url + "/metrics") as r:
        assert r.status == 401
    async with http.get(keyed.url + "/ready") as r:
        body = await r.json()
        assert r.status == 200 and body == {"status": "ready"}
    auth = {"Authorization": "Bearer s3cret"}
    async with http.get(keyed.url + "/metrics", headers=auth) as r:
        assert r.status == 200 and "lkn_requests" in await r.text()
    async with http.get(keyed.url + "/ready", headers=auth) as r:
        assert (await r.json())["engines"]


async def test_a_setting_opens_metrics_to_a_scraper(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, api_key="k",
                                           metrics_public=True))
    async with http.get(gw.url + "/metrics") as r:
        assert r.status == 200
    async with http.get(gw.url + "/v1/models") as r:
        assert r.status == 401


async def test_an_authorization_header_that_is_not_utf8_is_a_401(keyed: GatewayUnderTest) -> None:
    port = int(keyed.url.rsplit(":", 1)[1])
    answer = await raw_http(port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Authorization: Bearer \xff\xfe\xed\xa0\x80\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_x_lkn_engine_names_the_engine_not_its_address(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False))
    async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
        assert r.headers["X-LKN-Engine"] == "engine-1"
    shown = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                              engine_header="address"))
    async with http.post(shown.v1 + "/chat/completions", json=CHAT) as r:
        assert r.headers["X-LKN-Engine"] == double.url.split("//")[1]
