"""An engine's streamed response body, line by line (what server-sent events are read from),
and giving its connection back once the body has ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp


async def read_lines(content: aiohttp.StreamReader) -> AsyncIterator[list[bytes]]:
    """The lines of a response body, in the batches the socket delivers them (one await and
    one batch per network read, not per line).

    If the connection breaks, the complete lines that had already arrived are still yielded
    before the error: aiohttp raises before handing out data it has buffered, which would
    lose the last tokens the engine sent.
    """
    pending = b""
    while True:
        try:
            data = await content.readany()
        except aiohttp.ClientPayloadError:
            *lines, _ = (pending + _held_back(content)).split(b"\n")
            if lines:
                yield lines
            raise
        if not data:
            if pending:
                yield [pending]
            return
        *lines, pending = (pending + data).split(b"\n")
        if lines:
            yield lines


def release_at_end(response: aiohttp.ClientResponse) -> None:
    """Give a finished stream's connection back to the pool. The end of the body often comes
    just after ``[DONE]``: released before it, the connection would be closed (and the next
    request would open another), so it is released when the end comes, and closed if it has
    not come within a second."""
    content = response.content
    if content.is_eof():
        response.release()
        return
    content.on_eof(response.release)
    asyncio.get_running_loop().call_later(1.0, response.close)


def _held_back(content: aiohttp.StreamReader) -> bytes:
    """What aiohttp had buffered but not handed out when the connection broke."""
    buffer = getattr(content, "_buffer", None)
    offset = getattr(content, "_buffer_offset", 0)
    if not buffer or not isinstance(offset, int):
        return b""
    return b"".join(buffer)[offset:]
