"""Tools over gRPC: sent to the engine as OpenAI tools; bad definitions are INVALID_ARGUMENT."""

from __future__ import annotations

import json

import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from scripts.lib.sglang_double import SGLangDouble
from tests.rpc.conftest import RpcClient, chat

pytestmark = pytest.mark.fast


async def test_tools_reach_the_engine_and_history_keeps_tool_messages(
    rpc: RpcClient, double: SGLangDouble
) -> None:
    request = chat("CALL_TOOL now")
    request.tools.append(pb.Tool(name="lookup", description="Look up",
                                 parameters_json='{"type": "object"}'))
    request.chat.messages.extend([
        pb.ChatMessage(role="assistant", content="",
                       tool_calls=[pb.ToolCall(id="call_1", name="lookup", arguments="{}")]),
        pb.ChatMessage(role="tool", content="42", tool_call_id="call_1"),
    ])
    messages = [m async for m in rpc.stub.Generate(request)]
    assert messages[-1].finish.finish_reason in ("stop", "length", "tool_calls")
    [sent] = double.requests_to("/v1/chat/completions")
    assert sent.body["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look up", "parameters": {"type": "object"}}}]
    assert sent.body["messages"][1]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    assert sent.body["messages"][2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}


@pytest.mark.parametrize("tool, param", [
    (pb.Tool(name="f", parameters_json="{nope"), "tools[0].parameters_json"),
    (pb.Tool(name="f", parameters_json="[1]"), "tools[0].parameters_json"),
    (pb.Tool(name=""), "tools[0].name"),
])
async def test_bad_tool_definitions_are_invalid_argument(
    rpc: RpcClient, double: SGLangDouble, tool: pb.Tool, param: str
) -> None:
    request = chat("hello")
    request.tools.append(tool)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in rpc.stub.Generate(request)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert param in (caught.value.details() or "")
    assert not double.requests_to("/v1/chat/completions")


async def test_tools_need_a_chat_input(rpc: RpcClient) -> None:
    request = pb.GenerateRequest(prompt="once", tools=[pb.Tool(name="f")])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in rpc.stub.Generate(request)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chat" in (caught.value.details() or "")
