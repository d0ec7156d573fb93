"""The chunk stream between an engine and a front-end: :class:`Delivery`, the part of an
:class:`~lkn.exchange.exchange.Exchange` that iterates.

Each chunk's usage and finish are noted, usage-only chunks are dropped unless the client
asked for usage, the delivered text is kept for a resume; a stream cut short (no finish
reason) becomes an engine error, continued on another engine with ``LKN_RESUME``; the loop
guard ends an answer that repeats itself; a shutdown past its grace period cuts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from lkn.engines.batches import ChunkStream, batch_of
from lkn.errors import EngineError, LknError
from lkn.exchange.core import Core
from lkn.exchange.events import close, cut_at_shutdown, loop_tail, replay
from lkn.exchange.resume import Resume
from lkn.loopguard import LoopGuard
from lkn.pool import Lease
from lkn.values import Chunk, Decision, GenerateRequest, JSONObject, Usage


class Delivery:
    """The engine's chunks on their way to the client, and why the stream ended."""

    core: Core
    request: GenerateRequest
    decision: Decision
    lease: Lease | None
    _engine: str

    def __init__(self, resume: Resume | None, guard: LoopGuard | None) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        #: Whether the loop guard ended the answer.
        self.loop_stopped = False
        self._resume = resume
        self._guard = guard
        self._error: BaseException | None = None
        self._pending: Chunk | None = None
        self._rest: AsyncIterator[Chunk] | None = None
        self._finished = False
        self._interrupted = False
        self._waiting: asyncio.Task[object] | None = None

    @property
    def engine(self) -> str:
        """The engine serving the request, or the last one tried ("" before any)."""
        return self._engine

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def deadline(self) -> float | None:
        raise NotImplementedError

    def engine_body(self, decision: Decision) -> JSONObject:
        raise NotImplementedError

    def _deadline_passed(self) -> bool:
        raise NotImplementedError

    def __aiter__(self) -> Delivery:
        return self

    async def __anext__(self) -> Chunk:
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
            else:
                chunks = await self._next_from_engine(False)
                if chunks is None:
                    continue  # resumed on another engine
                chunk = chunks[0]
            if self._deliver(chunk):
                if self._looping(chunk):
                    await self._end_loop(chunk)
                return chunk

    async def next_batch(self) -> list[Chunk]:
        """The next chunks for the client (at least one): what one wait brings, the events
        of one network read where the engine's stream gives them so. Each is noted and
        watched as :meth:`__anext__` does one at a time (after one the loop guard ends the
        answer with, none of the engine's follow). Raises StopAsyncIteration at the end."""
        while True:
            chunk = self._pending
            if chunk is not None:
                self._pending = None
                rest = self._rest  # with the rest of its read, unless a shutdown cut it
                chunks = ([chunk, *rest.ready()]
                          if isinstance(rest, ChunkStream) and not self._interrupted
                          else [chunk])  # fmt: skip
            else:
                got = await self._next_from_engine(True)
                if got is None:
                    continue  # resumed on another engine
                chunks = got
            out: list[Chunk] = []
            for chunk in chunks:
                if self._deliver(chunk):
                    out.append(chunk)
                    if self._looping(chunk):
                        await self._end_loop(chunk)
                        break
            if out:
                return out

    async def _next_from_engine(self, batch: bool) -> list[Chunk] | None:
        """The engine's next chunk (with ``batch``, all that one wait brings); None when the
        stream was resumed elsewhere. Raises StopAsyncIteration at its end, or the error
        that ended it (recorded)."""
        if self._finished or self._rest is None:
            raise StopAsyncIteration
        if self._interrupted:
            raise self._stop(cut_at_shutdown())
        self._waiting = asyncio.current_task()
        try:
            if batch:
                return await batch_of(self._rest)
            return [await self._rest.__anext__()]
        except StopAsyncIteration:
            await self._ended()
            return None
        except LknError as exc:
            if self._whole():  # its finish came: the end of the connection is harmless
                self._finished = True
                raise StopAsyncIteration from None
            if await self._resumed(exc):
                return None
            raise self._stop(exc) from None
        except asyncio.CancelledError:
            if self._cut_by_shutdown():
                raise self._stop(cut_at_shutdown()) from None
            raise
        except Exception as exc:  # a bug between engine and front-end
            raise self._stop(exc) from None
        finally:
            self._waiting = None

    async def _ended(self) -> None:
        """The engine's stream ended: the answer's end, or a cut if no finish came."""
        if self.finish_reason is None:
            cut = EngineError(f"engine {self.engine} ended the stream without a finish reason",
                              engine=self.engine)  # fmt: skip
            if await self._resumed(cut):
                return None
            self._finished = True
            raise self._stop(cut) from None
        self._finished = True
        raise StopAsyncIteration

    def _deliver(self, chunk: Chunk) -> bool:
        """Note what ``chunk`` says (usage, finish, delivered text); whether the client
        gets it (the engine is always asked for usage; the client only if it asked)."""
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        if chunk.usage_only and not self.request.include_usage:
            return False
        if self._resume is not None:
            self._resume.note(chunk)
        return True

    def _looping(self, chunk: Chunk) -> bool:
        guard = self._guard
        return (guard is not None and bool(chunk.text) and self.finish_reason is None
                and guard.feed(chunk.text) is not None)

    async def _end_loop(self, last: Chunk) -> None:
        """The answer repeats itself: the engine request is dropped at once (its rid is
        aborted) and the answer ends after ``last`` with finish ``length``, the finish a
        client already knows as "cut before its natural end". What was sent stays."""
        self.loop_stopped = True
        self.finish_reason = "length"
        if self._rest is not None:
            rest, self._rest = self._rest, None
            await close(rest)
        self._rest = replay(loop_tail(last, self.request.route, self.usage))
        self.core.report.loop_stopped(self.core.models.engine_model(self.request))

    def _whole(self) -> bool:
        """Whether the answer is complete: its (one) choice has sent its finish chunk."""
        return self.finish_reason is not None and self.request.body.get("n") in (None, 1)

    async def _resumed(self, error: LknError) -> bool:
        """With ``LKN_RESUME``: continue on another engine after a failure mid-stream."""
        resume = self._resume
        if resume is None or self._interrupted or self._deadline_passed() or not resume.wants(error):
            return False
        if self._rest is not None:
            await close(self._rest)  # the failed engine is told to drop the request
        self._rest = None
        try:
            rest = await resume.resume(self, error)
        except asyncio.CancelledError:  # raised here, past the stream's own handler
            if self._cut_by_shutdown():
                raise self._stop(cut_at_shutdown()) from None
            raise
        if rest is None:
            return False
        self._rest = rest
        if self.lease is not None:
            self._engine = self.lease.engine.name
        return True

    def _stop(self, exc: BaseException) -> BaseException:
        self._finished = True
        return self.fail(exc)

    def fail(self, exc: BaseException) -> BaseException:
        """Record why the request failed (the first reason wins); returns ``exc``."""
        if self._error is None:
            self._error = exc
        return exc

    def _cut_by_shutdown(self) -> bool:
        """Whether the cancellation being handled is :meth:`interrupt`'s (the shutdown's),
        not the caller's own; if so it is taken back."""
        task = self._waiting
        return self._interrupted and task is not None and task.uncancel() == 0

    def interrupt(self) -> None:
        """End the stream with a shutdown error at once (the grace period is over)."""
        self._interrupted = True
        if self._waiting is not None:
            self._waiting.cancel()
