"""Server-sent events with keep-alive comments, for every streamed REST answer.

While nothing else is sent for ``interval`` seconds (``LKN_SSE_KEEPALIVE``) the stream gets
an SSE comment line, ``: keep-alive``, which every SSE client ignores (the OpenAI SDKs,
Open WebUI, browsers' EventSource) and which keeps proxies and browsers from timing the
connection out. That covers any silence: a long prefill, an entropy probe or another step
that holds the first token back, a slow engine mid-answer.

Before the first event the response has not started, so the front-end can still answer
with a proper error status. If the first event has not come after ``interval`` seconds,
the keep-alive starts the response (status 200, the headers known so far) and the rest of
the request is reported inside the stream (an error event, then ``[DONE]``); the headers
known only later (the decision) are then not sent.

Usage::

    async with EventStream(request, interval, headers) as events:
        ...                               # slow work; comments flow meanwhile
        await events.open(more_headers)   # no-op if a keep-alive already started it
        await events.send(payload)        # one "data: <payload>" event
        await events.finish(b"[DONE]")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType

from aiohttp import web

log = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"


class EventStream:
    def __init__(
        self, request: web.Request, interval: float, headers: Mapping[str, str]
    ) -> None:
        self.request = request
        self.response = web.StreamResponse(headers=dict(headers))
        self.interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._opening: asyncio.Lock | None = None
        self._beat: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether the status line and headers have been sent."""
        return self.response.prepared

    async def __aenter__(self) -> EventStream:
        if self.interval > 0:
            self._beat = asyncio.create_task(self._keep_alive())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        beat, self._beat = self._beat, None
        if beat is not None and not beat.done():
            beat.cancel()
            try:
                await beat
            except asyncio.CancelledError:
                # The beat's own cancellation, unless this task is being cancelled too.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise

    async def open(self, headers: Mapping[str, str] | None = None) -> None:
        """Send the status line and headers (adding ``headers``) unless already sent."""
        if self.response.prepared:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self.response.prepared:
                if headers:
                    self.response.headers.update(headers)
                await self.response.prepare(self.request)

    async def send(self, payload: bytes) -> None:
        """One ``data:`` event."""
        if not self.response.prepared:
            await self.open()
        await self.response.write(b"data: " + payload + b"\n\n")
        self._last = self._loop.time()

    async def finish(self, *payloads: bytes) -> None:
        """The last events, then the end of the response; keep-alives stop first."""
        await self._stop()
        if not self.response.prepared:
            await self.open()
        await self.response.write(b"".join(b"data: " + p + b"\n\n" for p in payloads))
        await self.response.write_eof()

    async def _keep_alive(self) -> None:
        interval = self.interval
        try:
            while True:
                wait = self._last + interval - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                await self.open()
                await self.response.write(KEEPALIVE)
                self._last = self._loop.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client is gone: the next real write finds out too
            log.debug("keep-alive stopped: %s", exc)
