"""Waiting for what a test looks up (a request counted, a stream open, tokens held) instead
of sleeping for a guessed time: the condition is polled on the event loop, with a limit
generous enough for two busy cores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition") -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"{what} not reached in {timeout:.0f} s"
        await asyncio.sleep(0.005)
