"""The streams open now, and ending them at shutdown once their grace period is over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("lkn.gateway")


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


class OpenStreams:
    """Streamed exchanges from entry to exit (also those still waiting for a first byte)."""

    def __init__(self, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
        self._clock = clock
        self._sleep = sleep
        self._open: set[Interruptible] = set()
        self._cut = False

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, stream: Interruptible) -> None:
        self._open.add(stream)
        if self._cut:  # it started after the grace period ended
            stream.interrupt()

    def closed(self, stream: Interruptible) -> None:
        self._open.discard(stream)

    async def drain(self, grace: float) -> None:
        """Let streams run for ``grace`` seconds, then end those still open with a shutdown
        error (REST: an error event then ``[DONE]``; gRPC: UNAVAILABLE)."""
        deadline = self._clock() + grace
        while self._open and self._clock() < deadline:
            await self._sleep(min(0.05, max(0.0, deadline - self._clock())))
        self._cut = True
        streams = list(self._open)
        if streams:
            log.warning("shutdown grace over: ending open streams count=%d", len(streams))
        for stream in streams:
            stream.interrupt()
