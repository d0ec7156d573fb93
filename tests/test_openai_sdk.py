"""The official openai SDK (sync and async, streaming and not) against the gateway."""

from __future__ import annotations

import asyncio

import openai
import pytest

from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import GatewayFactory, GatewayUnderTest, make_settings

pytestmark = pytest.mark.fast

MESSAGES = [{"role": "user", "content": "Say hello"}]


async def test_async_sdk_non_streaming(gw: GatewayUnderTest) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    reply = await client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    completion = await client.completions.create(model="smollm2", prompt="Hi", max_tokens=3)
    assert completion.choices[0].text
    models = await client.models.list()
    assert "smollm2" in [m.id for m in models.data]
    await client.close()


async def test_async_sdk_streaming_with_usage(gw: GatewayUnderTest) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model="smollm2", messages=MESSAGES, max_tokens=7, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text and finish == "length"
    assert usage is not None and usage.completion_tokens == 7
    await client.close()


async def test_async_sdk_sees_mid_stream_failure_as_an_error(
    double: SGLangDouble, gw: GatewayUnderTest
) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    double.script(Fault.DROP_MID_STREAM)
    stream = await client.chat.completions.create(
        model="smollm2", messages=MESSAGES, max_tokens=10, stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    await client.close()


async def test_async_sdk_gets_typed_errors(
    double: SGLangDouble, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(make_settings(double.url, grpc_enabled=False, breaker_failures=1,
                                           health_interval=30.0))
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="smollm2", messages=[], max_tokens=5)
    double.script(Fault.HTTP_500)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="smollm2", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="smollm2", messages=MESSAGES)
    assert info.value.status_code == 503
    await client.close()


async def test_sync_sdk_streaming_and_not(gw: GatewayUnderTest) -> None:
    # The sync client blocks; run it in a thread while the gateway's loop keeps serving.
    def run() -> tuple[str, str]:
        client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=4)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="smollm2", messages=MESSAGES, max_tokens=4, stream=True
            )
            if chunk.choices
        )
        client.close()
        return reply.choices[0].message.content or "", streamed

    plain, streamed = await asyncio.to_thread(run)
    assert plain and plain == streamed
