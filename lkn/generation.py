"""A streamed answer in progress: what front-ends iterate and must close.

The first chunk has already been received from the engine when a :class:`Generation` is
handed out, so the front-end can still answer with a proper status code if anything failed
before it. After that, an engine failure is raised from ``__anext__`` (the front-end turns
it into one error event and the end of the stream); nothing is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable

from lkn.errors import LknError
from lkn.pool import Outcome, outcome_of
from lkn.types import Chunk, Decision, Usage

log = logging.getLogger(__name__)


class Generation:
    def __init__(
        self,
        *,
        request_id: str,
        engine: str,
        decision: Decision,
        first: Chunk,
        rest: AsyncGenerator[Chunk, None],
        include_usage: bool,
        finish: Callable[[Generation, Outcome, BaseException | None], None],
    ) -> None:
        self.request_id = request_id
        self.engine = engine
        self.decision = decision
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.chunks = 0
        self.started = time.monotonic()
        self._pending: Chunk | None = first
        self._rest = rest
        self._finish = finish
        self._closed = False

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Chunk:
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
            else:
                if self._closed:
                    raise StopAsyncIteration
                try:
                    chunk = await self._rest.__anext__()
                except StopAsyncIteration:
                    self._end(Outcome.SUCCESS, None)
                    raise
                except LknError as exc:
                    self._end(outcome_of(exc), exc)
                    raise
            if chunk.usage is not None:
                self.usage = chunk.usage
            if chunk.finish_reason is not None:
                self.finish_reason = chunk.finish_reason
            # The engine is always asked for usage; the client only sees it if it asked.
            if chunk.usage_only and not self.include_usage:
                continue
            self.chunks += 1
            return chunk

    def _end(self, outcome: Outcome, error: BaseException | None) -> None:
        if not self._closed:
            self._closed = True
            self._finish(self, outcome, error)

    async def aclose(self) -> None:
        """Stop early (client gone) or clean up after the end; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._rest.aclose()
        finally:
            self._finish(self, Outcome.NEUTRAL, None)
