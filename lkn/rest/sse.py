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
        await events.send(payload, more=True)  # held, sent with the next one
        events.hold(payload); await events.flush()  # held, then all held in one write
        await events.finish(b"[DONE]")

Events that arrived together from the engine (one network read) are held and written
together, one write for the lot, as a pass-through proxy would forward them; an event is
never held past the moment the request's task waits: then it is written at once.
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
        #: The next look at the silence (a timer, not a task per stream), and a keep-alive
        #: being written.
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.Task[None] | None = None
        #: Events held back to be written with the next one, and the write of those the
        #: request's task left held when it went to wait.
        self._held: list[bytes] = []
        self._flushing: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether the status line and headers have been sent."""
        return self.response.prepared

    async def __aenter__(self) -> EventStream:
        if self.interval > 0:
            self._timer = self._loop.call_at(self._last + self.interval, self._silence)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
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

    async def send(self, payload: bytes, more: bool = False) -> None:
        """One ``data:`` event; with ``more``, held back to go out with the next one."""
        self.hold(payload)
        if more and len(self._held) > 1:  # already due with the ones held before it
            return
        await self.flush(more)

    def hold(self, payload: bytes) -> None:
        """One ``data:`` event, held back to go out with the next write (:meth:`flush`,
        :meth:`send` or :meth:`finish`), which the caller makes before it waits."""
        self._held.append(b"data: " + payload + b"\n\n")

    async def flush(self, more: bool = False) -> None:
        """Write the events held; with ``more`` (more of the engine's read follow), leave
        them held to go out with the next ones, at the latest when this task waits."""
        held = self._held
        if not held:
            return
        if more:
            self._loop.call_soon(self._flush_soon)
            return
        await self._write(b"".join(held) if len(held) > 1 else held[0])

    async def _write(self, data: bytes) -> None:
        """Write ``data`` (all that was held, and more), after any write still under way."""
        self._held = []
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing
        if not self.response.prepared:
            await self.open()
        await self.response.write(data)
        self._last = self._loop.time()

    def _flush_soon(self) -> None:
        """The request's task waits with events held: write them now (after the write of
        those held before, if it is still under way)."""
        if self._held:
            data, self._held = b"".join(self._held), []
            self._flushing = self._loop.create_task(self._flush(data, self._flushing))

    async def _flush(self, data: bytes, after: asyncio.Task[None] | None) -> None:
        try:
            if after is not None:
                await after
            if not self.response.prepared:
                await self.open()
            await self.response.write(data)
            self._last = self._loop.time()
        except Exception as exc:  # the client is gone: the next real write finds out too
            log.debug("held events not sent: %s", exc)

    async def finish(self, *payloads: bytes) -> None:
        """The last events, then the end of the response; keep-alives stop first."""
        await self._stop()
        data = b"".join(self._held) + b"".join(b"data: " + p + b"\n\n" for p in payloads)
        await self._write(data)
        await self.response.write_eof()

    def _silence(self) -> None:
        """Nothing was sent for ``interval`` seconds: a keep-alive comment (else look again
        when the interval since the last write has passed)."""
        due = self._last + self.interval
        if due > self._loop.time():
            self._timer = self._loop.call_at(due, self._silence)
            return
        self._timer = None
        self._beat = self._loop.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        try:
            await self.open()
            await self.response.write(KEEPALIVE)
            self._last = self._loop.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client is gone: the next real write finds out too
            log.debug("keep-alive stopped: %s", exc)
            return
        if self._beat is asyncio.current_task():  # not stopped meanwhile
            self._beat = None
            self._timer = self._loop.call_at(self._last + self.interval, self._silence)
