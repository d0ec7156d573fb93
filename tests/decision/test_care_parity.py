"""Each intervention reaches the engine in the same shape from REST and from gRPC, and the
decision (headers, probe, /ready, metrics) says which intervention and policy applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from lkn.config import load_settings
from lkn.care.policy import load_policy
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import CARE_OPEN, GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

QUESTION = "How many legs do 4 dogs have in total?"
#: Fields of the engine body that each front-end fills in its own way (not the care's).
_OWN = ("rid", "stream", "stream_options", "model")


def engine_shape(double: SGLangDouble) -> dict[str, Any]:
    body = dict(double.requests_to("/v1/chat/completions")[-1].body)
    for key in _OWN:
        body.pop(key, None)
    return body


async def rest_body(gw: GatewayUnderTest, double: SGLangDouble, headers: dict[str, str],
                    sampling: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    body = {"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 8, "stream": True, **sampling}
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.v1 + "/chat/completions", json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            await r.read()
            return engine_shape(double), dict(r.headers)


async def grpc_body(gw: GatewayUnderTest, double: SGLangDouble, intervention: str | None,
                    sampling: dict[str, Any]) -> tuple[dict[str, Any], pb.Decision]:  # fmt: skip
    request = pb.GenerateRequest(
        model="smollm2", chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=QUESTION)]))
    request.sampling.max_tokens = 8
    for key, value in sampling.items():
        setattr(request.sampling, key, value)
    metadata = (("x-lkn-intervention", intervention),) if intervention else None
    decision = None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        async for message in gateway_pb2_grpc.GatewayStub(channel).Generate(
                request, metadata=metadata):  # fmt: skip
            if message.WhichOneof("event") == "start":
                decision = message.start.decision
    assert decision is not None
    return engine_shape(double), decision


CASES = [
    ("prompt:system", {}),
    ("prompt:suffix", {"temperature": 0.0}),
    ("sampling", {}),
    ("sampling", {"temperature": 0.9}),  # the client's temperature wins
    ("sampling+prompt:suffix", {}),
    ("consistency:3", {}),
    ("none", {}),
]


@pytest.mark.parametrize("intervention, sampling", CASES)
async def test_rest_and_grpc_send_the_same_engine_body(
    intervention: str, sampling: dict[str, Any], double: SGLangDouble,
    start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, client=CARE_OPEN))
    rest, headers = await rest_body(gw, double, {"X-LKN-Intervention": intervention}, sampling)
    rpc, decision = await grpc_body(gw, double, intervention, sampling)
    assert rest == rpc
    assert headers["X-LKN-Intervention"] == intervention
    assert headers["X-LKN-Mode"] == ("FLUIDO" if intervention == "none" else "ANALITICO")
    assert pb.Mode.Name(decision.mode) == "MODE_" + headers["X-LKN-Mode"]
    text = rest["messages"][-1]["content"] if "suffix" in intervention else ""
    if "suffix" in intervention:
        assert text.startswith(QUESTION) and text != QUESTION
    if intervention == "prompt:system":
        assert rest["messages"][0]["role"] == "system"
        assert rest["messages"][0]["content"].startswith("You are a helpful AI assistant")
    if intervention.startswith("sampling"):
        assert rest["temperature"] == sampling.get("temperature", 0.0)
    if intervention.startswith("consistency"):
        assert rest["n"] == 3 and rest["temperature"] == 0.7
    if intervention == "none":
        assert rest == {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}


async def test_a_malformed_intervention_is_a_clear_400_and_invalid_argument(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, client=CARE_OPEN))
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.v1 + "/chat/completions", headers={"X-LKN-Intervention": "magic"},
                             json={"messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 400
            error = (await r.json())["error"]
            assert error["param"] == "X-LKN-Intervention" and "magic" in error["message"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_body(gw, double, "prompt:middle", {})
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert not double.requests_to("/v1/chat/completions")


async def test_the_policy_in_force_is_shown_and_applied(
    tmp_path: Path, double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({
        "format": "lkn-policy/1", "name": "measured", "model": "smollm2",
        "rules": [{"signals": ["counting"], "intervention": "sampling", "why": "+9/-1"},
                  {"signals": ["none"], "intervention": "sampling", "why": "+5/-0"}],
        "rejected": [{"signals": ["counting"], "intervention": "prompt:system"}],
    }))
    settings = make_settings(double.url, decision={"policy": load_policy(path)})
    gw = await start_gateway(settings)
    rest, headers = await rest_body(gw, double, {}, {})
    assert rest["temperature"] == 0.0 and headers["X-LKN-Intervention"] == "sampling"
    assert headers["X-LKN-Policy"].startswith("measured#")
    rpc, decision = await grpc_body(gw, double, None, {})
    assert rpc == rest
    async with aiohttp.ClientSession() as http:
        async with http.get(gw.url + "/ready") as r:
            care = (await r.json())["care"]
        assert care["policy"]["name"] == "measured" and care["policy"]["rejected"]
        assert care["policy"]["rules"][0]["why"] == "+9/-1"
        async with http.post(gw.v1 + "/lkn/probe", json={
                "messages": [{"role": "user", "content": "Hello!"}]}) as r:  # fmt: skip
            probe = await r.json()
        assert probe["intervention"] == "sampling" and probe["care"]["policy"]["name"] == "measured"
        async with http.get(gw.url + "/metrics") as r:
            assert 'lkn_interventions_total{applied="true",intervention="sampling"}' in await r.text()


async def test_the_shipped_default_gives_requests_the_penalised_greedy_sampling(
    tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    shipped = load_settings({}, env_file=empty).decision.shipped_policies  # LKN_POLICY=auto
    model = "SmolLM2-135M-Instruct"
    async with SGLangDouble(model=model) as double:
        gw = await start_gateway(make_settings(double.url, decision={
            "shipped_policies": shipped, "policy_setting": "auto"}))
        sent = []
        async with aiohttp.ClientSession() as http:
            for sampling in ({}, {"temperature": 0}, {"temperature": 0.7}):
                body = {"model": model, "messages": [{"role": "user", "content": QUESTION}],
                        "max_tokens": 8, **sampling}
                async with http.post(gw.v1 + "/chat/completions", json=body) as r:
                    assert r.status == 200, await r.text()
                    assert r.headers["X-LKN-Intervention"] == "sampling:rp=1.2"
                    assert r.headers["X-LKN-Mode"] == "FLUIDO"  # the model's default treatment
                sent.append(engine_shape(double))
            async with http.get(gw.url + "/ready") as r:
                care = (await r.json())["care"]
        # Open WebUI's shape (no sampling field) gets temperature 0 and the penalty; the
        # client's own temperature wins, the penalty it did not set is added.
        assert (sent[0]["temperature"], sent[0]["repetition_penalty"]) == (0.0, 1.2)
        assert sent[1]["temperature"] == 0 and sent[2]["temperature"] == 0.7
        assert sent[1]["repetition_penalty"] == sent[2]["repetition_penalty"] == 1.2
        assert care["setting"] == "auto"
        assert [p["model"] for p in care["policies"]] == [p.model for p in shipped]
        smollm2 = next(p for p in care["policies"] if p["model"] == model)
        assert smollm2["rules"][-1]["when"] == "all -> sampling:rp=1.2"
