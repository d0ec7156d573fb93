"""An engine's chunks in the batches they arrived in: the events of one network read.

:class:`ChunkStream` is what :meth:`~lkn.engines.client.HttpEngineClient.stream` returns: an
async iterator of chunks like any other (one at a time), which also hands out the rest of
the current read at once (:meth:`ChunkStream.batch`), so that a front-end that forwards the
events of one read together pays one await per read, not one per event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from lkn.values import Chunk


class ChunkStream:
    """Chunks from an async generator of non-empty batches (one per network read)."""

    __slots__ = ("_batches", "_batch", "_at")

    def __init__(self, batches: AsyncGenerator[list[Chunk], None]) -> None:
        self._batches = batches
        self._batch: list[Chunk] = []
        self._at = 0

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> Chunk:
        if self._at >= len(self._batch):
            self._batch, self._at = await self._batches.__anext__(), 0
        chunk = self._batch[self._at]
        self._at += 1
        return chunk

    def ready(self) -> list[Chunk]:
        """The chunks of the current batch not handed out yet (no wait; maybe none)."""
        batch, at = self._batch, self._at
        self._batch, self._at = [], 0
        return batch[at:] if at else batch

    async def batch(self) -> list[Chunk]:
        """The rest of the current batch, or else the next one (at least one chunk)."""
        ready = self.ready()
        return ready if ready else await self._batches.__anext__()

    async def aclose(self) -> None:
        await self._batches.aclose()


async def batch_of(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    """The next chunks of ``chunks`` that can be had with one wait: the rest of a network
    read for a :class:`ChunkStream`, one chunk for any other iterator."""
    if isinstance(chunks, ChunkStream):
        return await chunks.batch()
    return [await chunks.__anext__()]
