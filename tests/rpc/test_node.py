"""A Node.js client (@grpc/grpc-js, loading protos/ at run time) against a running gateway."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]


async def run(*argv: str, timeout: float) -> tuple[int, str, str]:
    # A subprocess, so the loop keeps serving the gateway the client talks to.
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_node_client_streams_generate_and_calls_probe(
    double: SGLangDouble, start_gateway: GatewayFactory
) -> None:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed (the machine image provides them)")
    code, _, err = await run("bash", str(ROOT / "scripts" / "install_node_deps.sh"), timeout=300)
    assert code == 0, err
    gw = await start_gateway(make_settings(double.url))

    code, out, err = await run(
        node, str(ROOT / "tests" / "node" / "client.js"), f"127.0.0.1:{gw.grpc_port}",
        "hello there", "5", timeout=60,
    )  # fmt: skip
    assert code == 0, out + err
    result = json.loads(out)

    generate = result["generate"]
    assert generate["start"]["request_id"] == "node-1"
    assert generate["start"]["decision"]["mode"] == "MODE_FLUIDO"
    assert generate["text"] == "Echo: hello there w3 w4"
    assert generate["finish"]["finish_reason"] == "length"
    assert generate["finish"]["usage"]["completion_tokens"] == 5
    assert generate["messages"] == 2 + 5
    sent = double.requests_to("/v1/chat/completions")[0].body
    assert sent["rid"] == generate["start"]["gateway_request_id"]

    probe = result["probe"]
    assert probe["request_id"] == "node-2"
    assert probe["decision"]["mode"] == "MODE_ANALITICO"
    assert probe["decision"]["strategy"] == "override"

    assert result["models"]["models"][0]["id"] == "smollm2"
    assert result["bad"]["error"]["code"] == "INVALID_ARGUMENT"
    assert result["bad"]["error"]["metadata"]["lkn-error-type"] == "invalid_request_error"
