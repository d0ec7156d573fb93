"""A minimal client: stream one ``Generate`` over a channel and time it (tests, benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from lkn._proto.lkn.v1 import gateway_pb2 as pb

GENERATE = "/lkn.v1.Gateway/Generate"


def chat_request(
    text: str, *, max_tokens: int | None = None, mode: pb.Mode = pb.MODE_AUTO, model: str = ""
) -> pb.GenerateRequest:
    """A ``GenerateRequest`` with one user message."""
    request = pb.GenerateRequest(
        model=model,
        chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=text)]),
        mode=mode,
    )
    if max_tokens is not None:
        request.sampling.max_tokens = max_tokens
    return request


@dataclass
class StreamResult:
    start: pb.GenerateStart
    text: str
    finish: pb.GenerateFinish | None
    #: Messages received, ``start`` and ``finish`` included.
    messages: int
    #: Seconds from the call to the first text delta (None: no text).
    first_text_s: float | None
    total_s: float


async def stream_generate(
    channel: grpc.aio.Channel,
    request: pb.GenerateRequest,
    *,
    timeout: float | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> StreamResult:
    """Stream one ``Generate`` to its end; a failed call raises :class:`grpc.aio.AioRpcError`."""
    method: grpc.aio.UnaryStreamMultiCallable[pb.GenerateRequest, pb.GenerateResponse] = (
        channel.unary_stream(
            GENERATE,
            request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString,
        )
    )
    started = time.perf_counter()
    start = pb.GenerateStart()
    finish: pb.GenerateFinish | None = None
    parts: list[str] = []
    messages = 0
    first_text: float | None = None
    async for message in method(request, timeout=timeout, metadata=metadata):
        messages += 1
        event = message.WhichOneof("event")
        if event == "start":
            start = message.start
        elif event == "delta":
            if first_text is None and message.delta.text:
                first_text = time.perf_counter() - started
            parts.append(message.delta.text)
        elif event == "finish":
            finish = message.finish
    return StreamResult(
        start=start,
        text="".join(parts),
        finish=finish,
        messages=messages,
        first_text_s=first_text,
        total_s=time.perf_counter() - started,
    )
