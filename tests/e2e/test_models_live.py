"""A pool of two real engines serving different models: SGLang (CPU, SmolLM2) and llama.cpp
under another model name. Every request goes to the engine of its model; an unknown model
is 404 ``model_not_found``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.livestack import LiveEngine, LiveGateway, ready_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

ASK = [{"role": "user", "content": "Name three colours."}]
OTHER = "SmolLM2-135M-Instruct-GGUF"


@pytest.fixture(scope="module")
def other_model(live_dir: Path) -> Iterator[LiveEngine]:
    other = LiveEngine("llamacpp", live_dir / "llamacpp-other-model", start_timeout=180,
                       served_name=OTHER)  # fmt: skip
    with other.running() as engine:
        yield engine


@pytest.fixture(scope="module")
def models_gateway(live_sglang: LiveEngine, other_model: LiveEngine,
                   live_dir: Path) -> Iterator[LiveGateway]:  # fmt: skip
    with ready_gateway(f"{live_sglang.url},openai={other_model.url}",
                       live_dir / "models-gateway", LKN_READ_TIMEOUT="60") as gw:
        yield gw


async def test_each_request_goes_to_the_engine_of_its_model_and_gpt_4_is_404(
    models_gateway: LiveGateway,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(models_gateway.url + "/v1/models") as r:
            models = {card["id"] for card in (await r.json())["data"]}
        sglang_model = next(m for m in models if m != OTHER and "+" not in m)
        assert OTHER in models
        # X-LKN-Engine names an engine by its place in LKN_ENGINE_URLS.
        expected = {sglang_model: "engine-1", OTHER: "engine-2"}
        served: Counter[tuple[str, str]] = Counter()
        for i in range(10):
            model = sglang_model if i % 2 == 0 else OTHER
            body = {"model": model, "messages": ASK, "max_tokens": 4, "stream": i % 4 < 2}
            async with http.post(models_gateway.url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
                await r.read()
                served[(model, r.headers["X-LKN-Engine"])] += 1
        assert sum(n for (m, e), n in served.items() if expected[m] == e) == 10, served
        async with http.post(models_gateway.url + "/v1/chat/completions",
                             json={"model": "gpt-4", "messages": ASK}) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "model_not_found"
