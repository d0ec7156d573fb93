"""At default settings a client's text never reaches the gateway's log or response headers,
also when the engine quotes it back in an error; every log value is escaped."""

from __future__ import annotations

import io
import logging
import uuid

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from lkn.logs import LogfmtFormatter, escape
from lkn.privacy import scrub
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.rpc.conftest import chat

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("strategy", ["rules", "entropy"])
async def test_a_marker_in_a_prompt_is_never_in_the_log_or_the_headers(
    double: SGLangDouble, start_gateway: GatewayFactory, http: aiohttp.ClientSession,
    gateway_log: io.StringIO, strategy: str,
) -> None:
    gw = await start_gateway(make_settings(double.url, decision={"strategy": strategy,
                                                                 "speculative": False}))
    marker = "MARK" + uuid.uuid4().hex
    body = {"messages": [{"role": "user", "content": f"please repeat {marker} now"}],
            "max_tokens": 4}
    headers: list[str] = []
    statuses = []
    for fault in (None, Fault.ECHO_ERROR, Fault.ECHO_ERROR, Fault.ECHO_ERROR):
        for stream in (False, True):
            if fault is not None:  # with entropy, the probe takes one and the generation one
                double.script(*[fault] * (2 if strategy == "entropy" else 1))
            async with http.post(gw.v1 + "/chat/completions",
                                 json={**body, "stream": stream}) as r:
                statuses.append(r.status)
                headers.extend(f"{k}: {v}" for k, v in r.headers.items())
                await r.read()
    async with http.post(gw.v1 + "/lkn/probe", json=body) as r:
        headers.extend(f"{k}: {v}" for k, v in r.headers.items())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        request_id = f"client-{marker}\nlevel=error forged=1"
        double.script(*[Fault.ECHO_ERROR] * 3)
        failed = 0
        for message in (chat(f"say {marker}"), chat(marker), chat(marker),
                        pb.GenerateRequest(request_id=request_id, chat=chat(marker).chat)):
            try:
                async for _ in stub.Generate(message):
                    pass
            except grpc.aio.AioRpcError as exc:
                failed += 1
                assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert marker not in (exc.details() or "")
        assert failed >= 1
    assert 200 in statuses and any(s >= 400 for s in statuses)
    assert double.received  # the engine did see the prompt ...
    text = gateway_log.getvalue()
    assert " rid=" in text  # ... and the log is not empty
    assert marker not in text
    assert all(marker not in h for h in headers)
    assert "\nlevel=error forged=1" not in text


def test_engine_messages_are_scrubbed_of_what_they_quote() -> None:
    message = ("1 validation error for ChatCompletionRequest\nbody\n  Value error "
               "[type=value_error, input_value={'messages': [{'role': 'user', 'content': "
               "'secret words'}]}, input_type=dict]")
    assert "secret" not in scrub(message)
    assert "validation error" in scrub(message)
    assert scrub("The input (3000 tokens) is longer than the model's context length "
                 "(2048 tokens).").endswith("(2048 tokens).")
    assert "secret" not in scrub('bad value "secret \\" words" here')
    assert "secret" not in scrub("unclosed 'secret words")
    assert len(scrub("x" * 10_000)) <= 300


@pytest.mark.parametrize(("value", "expected"), [
    ("plain-value_1.2", "plain-value_1.2"),
    ("two words", '"two words"'),
    ("a\nlevel=error", '"a\\nlevel=error"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("k=v", '"k=v"'),
    ("", '""'),
    ("\u2028", '"\\u2028"'),
])
def test_log_values_are_escaped(value: str, expected: str) -> None:
    assert escape(value) == expected


def test_a_log_record_is_one_line_whatever_its_values() -> None:
    record = logging.LogRecord("lkn.x", logging.INFO, __file__, 1,
                               "event rid=%s model=%s n=%d", ("a\nb", "m x", 3), None)
    line = LogfmtFormatter().format(record)
    assert "\n" not in line and 'rid="a\\nb" model="m x" n=3' in line
    multi = logging.LogRecord("lkn.x", logging.INFO, __file__, 1, "two\nlines", None, None)
    assert "\n" not in LogfmtFormatter().format(multi)
