"""A seeded, time-bounded fuzz of both front-ends: no input gets a 5xx or gRPC UNKNOWN /
INTERNAL, nothing hangs, the gateway stays healthy after every batch, the log has no traceback.

REST: every field of a chat / completions / probe body set to values of every type, broken and
deeply nested JSON, NaN and huge numbers, invalid UTF-8 and surrogates, odd content types,
methods and paths, malformed HTTP on a raw socket. gRPC: random bytes, valid messages mutated
and truncated, out-of-range and non-finite sampling values, invalid UTF-8 in string fields.
``LKN_FUZZ_SEED`` and ``LKN_FUZZ_CASES`` (per front-end) change the run; the default is fixed.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

SEED = int(os.environ.get("LKN_FUZZ_SEED", "20261201"))
CASES = int(os.environ.get("LKN_FUZZ_CASES", "2400"))
BATCH = 40
#: Longest any one case may take (a busy 2-core machine included): more is a hang.
CASE_TIMEOUT = 20.0

FIELDS = ["model", "messages", "prompt", "stream", "stream_options", "max_tokens",
          "max_completion_tokens", "n", "temperature", "top_p", "top_k", "min_p", "seed",
          "presence_penalty", "frequency_penalty", "repetition_penalty", "stop", "tools",
          "logprobs", "top_logprobs", "response_format", "user", "extra"]


def scalar(rng: random.Random) -> object:
    return rng.choice([
        None, True, False, 0, -1, 1, 2, 3, 17, -(2**63), 2**64, 1e308, -1e308, 0.5, -0.0,
        1e-320, "", "x", "NaN", "\u0000", "\ud7ff\ue000", "é" * 50, "🙂", "a" * 5000, [], {},
        [1, 2], {"a": 1}, [{"role": "user"}], {"type": "text"},
    ])


def value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.6:
        return scalar(rng)
    if roll < 0.8:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(FIELDS + ["role", "content", "type", "text"]): value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def valid_body(rng: random.Random) -> dict[str, object]:
    if rng.random() < 0.5:
        return {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4}
    return {"prompt": "hello there", "max_tokens": 4}


def body_bytes(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    body = valid_body(rng)
    if kind <= 3:  # a field of every type
        for _ in range(rng.randint(1, 3)):
            field = rng.choice(FIELDS)
            body[field] = value(rng)
            if field in ("max_tokens", "max_completion_tokens") and isinstance(body[field], int) \
                    and not isinstance(body[field], bool) and body[field] > 64:
                body[field] = 64  # the double would really generate that many tokens
        return json.dumps(body, allow_nan=True).encode()
    raw = json.dumps(body).encode()
    if kind == 4:  # nesting
        depth = rng.choice([50, 64, 65, 500, 990, 1000, 5000, 100_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        return b'{"messages": ' + opener * depth + b"1" + closer * depth + b"}"
    if kind == 5:  # broken JSON
        cut = rng.randrange(len(raw) + 1)
        return raw[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 8)))
    if kind == 6:  # non-JSON numbers
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999",
                            b"9" * 5000, b"1" + b"0" * 400, b"0x10", b"01", b".5", b"+1"])
        return raw.replace(b"4", token, 1)
    if kind == 7:  # encodings
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                          b"\\ud800", b"\\udfff\\ud800", b"\xef\xbb\xbf", b"\x00"])
        return raw.replace(b"hello", bad, 1)
    if kind == 8:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    return json.dumps(value(rng)).encode()  # any JSON at all


def rest_case(rng: random.Random) -> tuple[str, str, bytes, dict[str, str]]:
    method = "POST" if rng.random() < 0.9 else rng.choice(["GET", "PUT", "DELETE", "PATCH",
                                                            "OPTIONS", "HEAD"])
    path = rng.choice(["/v1/chat/completions", "/v1/completions", "/v1/lkn/probe"] * 6
                      + ["/v1/models", "/v1/models/%00", "/v1/models/" + "a" * 3000, "/health",
                         "/ready", "/metrics", "/v1/chat/completions/", "//v1/completions",
                         "/v1/../v1/completions", "/%ff", "/v1/chat/completions?x=%zz"])
    headers = {"Content-Type": "application/json"}
    roll = rng.random()
    if roll < 0.1:
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                              "application/json; charset=latin-1", "",
                                              "application/ld+json", "*/*", "json"])
    elif roll < 0.15:
        del headers["Content-Type"]
    if rng.random() < 0.1:
        headers["X-LKN-Mode"] = rng.choice(["fluido", "ANALITICO", "auto", "x", "", " " * 100])
    if rng.random() < 0.05:
        headers["Authorization"] = rng.choice(["Bearer", "Bearer x", "Basic a", "x" * 4000])
    return method, path, body_bytes(rng), headers


#: The gateway's own name (any other Host is refused before the request is read further).
_POST = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
RAW_HTTP = [
    b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
    _POST + b"Content-Length: -1\r\n\r\n",
    _POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
    _POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    _POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"\r\n\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
]


@pytest.fixture
async def double() -> AsyncIterator[SGLangDouble]:
    """A fixed short reply: a fuzzed token budget must not make the double build a huge one."""
    async with SGLangDouble(reply="a short fixed reply") as fake:
        yield fake


@pytest.fixture
async def fgw(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    # Short header and idle timeouts: an incomplete request is closed within the case's time.
    return await start_gateway(make_settings(double.url, max_body_bytes=1 << 20,
                                             header_timeout=2.0, idle_timeout=4.0))


async def healthy(http: aiohttp.ClientSession, gw: GatewayUnderTest) -> None:
    async with http.get(gw.url + "/health") as r:
        assert r.status == 200
    assert gw.gateway.ready()


async def test_rest_fuzz(fgw: GatewayUnderTest, gateway_log: io.StringIO) -> None:
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    failures: list[str] = []

    async def one(http: aiohttp.ClientSession, case: tuple[str, str, bytes, dict[str, str]]) -> None:
        method, path, data, headers = case
        async with http.request(method, fgw.url + path, data=data, headers=headers,
                                skip_auto_headers=["Content-Type"]) as r:
            await r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status >= 500:
                failures.append(f"{r.status} {method} {path} {data[:120]!r}")

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=CASE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(CASES // BATCH):
            cases = [rest_case(rng) for _ in range(BATCH)]
            await asyncio.gather(*(one(http, c) for c in cases))  # a timeout is a hang
            await healthy(http, fgw)
        port = int(fgw.url.rsplit(":", 1)[1])

        async def raw_one(raw: bytes) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            answer = await asyncio.wait_for(reader.read(65536), CASE_TIMEOUT)
            writer.close()
            if answer[9:10] == b"5":  # "HTTP/1.1 5xx"
                failures.append(f"raw {raw[:60]!r} -> {answer[:60]!r}")

        await asyncio.gather(*(raw_one(raw) for raw in RAW_HTTP * 4))
        await healthy(http, fgw)
    print(f"rest fuzz: {CASES} cases + {len(RAW_HTTP) * 4} raw, seed {SEED}, "
          f"{time.monotonic() - started:.1f}s, statuses {sorted(statuses.items())}")
    assert not failures, failures[:10]
    assert sum(v for k, v in statuses.items() if 400 <= k < 500) > CASES // 2
    assert "Traceback" not in gateway_log.getvalue()


def grpc_case(rng: random.Random) -> tuple[str, bytes]:
    method = rng.choice(["Generate", "Probe", "Generate", "Probe", "ListModels"])
    kind = rng.randrange(6)
    message: pb.GenerateRequest | pb.ProbeRequest
    cls = pb.ProbeRequest if method == "Probe" else pb.GenerateRequest
    if rng.random() < 0.5:
        message = cls(chat=pb.Chat(messages=[pb.ChatMessage(role=rng.choice(
            ["user", "system", "assistant", "tool", "", "x", "USER"]), content="hello")]))
    else:
        message = cls(prompt=rng.choice(["hello", "", "x" * 1000]))
    if rng.random() < 0.3:
        message.request_id = rng.choice(["a\nb", "x" * 500, "r=1 level=error", "\u2028"])
    message.mode = rng.choice([0, 0, 1, 2, 3, -5, 99])
    if kind <= 2:  # sampling values in and out of range, finite or not
        s = message.sampling
        for _ in range(rng.randint(1, 4)):
            field = rng.choice(["temperature", "top_p", "min_p", "presence_penalty",
                                "frequency_penalty", "repetition_penalty"])
            setattr(s, field, rng.choice([math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1.0,
                                          2.0, 3.0, 1e308, -1e-300]))
        if rng.random() < 0.5:
            s.top_k = rng.choice([-(2**31), -2, -1, 0, 1, 2**31 - 1])
        if rng.random() < 0.5:
            s.max_tokens = rng.choice([0, 1, 4, 64])
        else:
            s.max_tokens = 4
        if rng.random() < 0.2:
            s.stop.extend(rng.choice([[""], ["x"] * 100, ["\u0000"]]))
        return method, message.SerializeToString()
    raw = bytearray(message.SerializeToString())
    if kind == 3 and raw:  # flipped bytes
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return method, bytes(raw)
    if kind == 4:  # truncated or extended
        return method, bytes(raw[: rng.randrange(len(raw) + 1)]) + bytes(
            rng.randrange(256) for _ in range(rng.randint(0, 6)))
    # random bytes, invalid UTF-8 in the prompt, or a wrong wire type
    return method, rng.choice([
        bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))),
        b"\x22\x04\xff\xfe\x80\x81", b"\x22\x03\xed\xa0\x80", b"\x21" + b"\x00" * 8,
        b"\x1a\x07\x0a\x05\x0a\x01\xff\x12\x00",
    ])


async def test_grpc_fuzz(fgw: GatewayUnderTest, gateway_log: io.StringIO) -> None:
    rng = random.Random(SEED + 1)
    codes: dict[str, int] = {}
    failures: list[str] = []
    cases = CASES // 2
    started = time.monotonic()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fgw.grpc_port}") as channel:

        async def one(method: str, data: bytes) -> None:
            path = f"/lkn.v1.Gateway/{method}"
            code = grpc.StatusCode.OK
            try:
                if method == "Generate":
                    async for _ in channel.unary_stream(path)(data, timeout=CASE_TIMEOUT):
                        pass
                else:
                    await channel.unary_unary(path)(data, timeout=CASE_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            codes[code.name] = codes.get(code.name, 0) + 1
            if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.DEADLINE_EXCEEDED):
                failures.append(f"{code.name} {method} {data[:80]!r}")

        async with aiohttp.ClientSession() as http:
            for _ in range(cases // BATCH):
                await asyncio.gather(*(one(*grpc_case(rng)) for _ in range(BATCH)))
                await healthy(http, fgw)
    print(f"grpc fuzz: {cases} cases, seed {SEED + 1}, {time.monotonic() - started:.1f}s, "
          f"codes {sorted(codes.items())}")
    assert not failures, failures[:10]
    assert codes.get("INVALID_ARGUMENT", 0) > cases // 4
    assert "Traceback" not in gateway_log.getvalue()
