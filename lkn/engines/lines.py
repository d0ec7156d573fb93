"""An engine's streamed response body, line by line (what server-sent events are read from)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp


async def read_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Lines of a response body, read in whatever pieces the socket delivers (one await
    per network read, not per line).

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
            for line in lines:
                yield line
            raise
        if not data:
            if pending:
                yield pending
            return
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            yield line


def _held_back(content: aiohttp.StreamReader) -> bytes:
    """What aiohttp had buffered but not handed out when the connection broke."""
    buffer = getattr(content, "_buffer", None)
    offset = getattr(content, "_buffer_offset", 0)
    if not buffer or not isinstance(offset, int):
        return b""
    return b"".join(buffer)[offset:]
