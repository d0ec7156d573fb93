"""Sends one evaluation request to the gateway's REST surface and times it.

Requests are streamed (with usage) so time to first token is measured as a client sees it;
the decision the gateway took is read from its response headers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lkn.eval.arms import Arm
from lkn.eval.items import Item


@dataclass
class Answer:
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    ttft_s: float | None = None
    latency_s: float = 0.0
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The streamed pieces of the text (one token each on SGLang and llama.cpp).
    pieces: list[str] = field(default_factory=list)


def request_body(item: Item, arm: Arm, model: str, max_tokens: int) -> dict[str, object]:
    """The request; an open chat prompt goes without ``max_tokens``, as Open WebUI sends it
    (the gateway's default answer budget applies)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": item.prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if not item.open:
        body["max_tokens"] = max_tokens
    body.update(arm.sampling())
    return body


_KEPT_HEADERS = ("x-lkn-mode", "x-lkn-strategy", "x-lkn-intervention", "x-lkn-policy",
                 "x-lkn-signals", "x-lkn-engine")


async def ask(
    session: aiohttp.ClientSession,
    url: str,
    item: Item,
    arm: Arm,
    model: str,
    max_tokens: int,
    api_key: str | None = None,
) -> Answer:
    """One streamed chat completion; failures are returned in ``Answer.error``, never raised."""
    headers = {"Content-Type": "application/json", **arm.headers}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    answer = Answer()
    started = time.monotonic()
    try:
        async with session.post(
            url + "/v1/chat/completions",
            data=json.dumps(request_body(item, arm, model, max_tokens)),
            headers=headers,
        ) as response:
            answer.headers = {k: v for k, v in response.headers.items()
                              if k.lower() in _KEPT_HEADERS}
            if response.status != 200:
                answer.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return answer
            await _read_stream(response.content, answer, started)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    finally:
        answer.latency_s = time.monotonic() - started
        answer.text = "".join(answer.pieces)
    return answer


async def _read_stream(stream: aiohttp.StreamReader, answer: Answer, started: float) -> None:
    """The server-sent events into ``answer``, up to ``[DONE]`` or an error event."""
    async for raw_line in stream:
        line = raw_line.strip()
        if not line.startswith(b"data:"):
            continue  # keep-alive comments, blank separators
        data = line[5:].strip()
        if data == b"[DONE]" or not _take_event(json.loads(data), answer, started):
            break


def _take_event(event: Any, answer: Answer, started: float) -> bool:
    """One streamed chunk into ``answer``; False for an error event (the stream ends)."""
    if "error" in event:
        answer.error = str(event["error"].get("message", event["error"]))
        return False
    usage = event.get("usage")
    if usage:
        answer.completion_tokens = int(usage.get("completion_tokens") or 0)
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            if answer.ttft_s is None:
                answer.ttft_s = time.monotonic() - started
            answer.pieces.append(content)
        if choice.get("finish_reason"):
            answer.finish_reason = choice["finish_reason"]
    return True
