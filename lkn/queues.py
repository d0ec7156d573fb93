"""Reads the engines' waiting queues for the homeostat (SGLang's ``GET /v1/loads``).

One task per gateway polls every engine that can report its queue, each
``LKN_HEALTH_INTERVAL``, and hands the busiest engine's waiting-request count to the
homeostat. An engine that cannot say (another kind of server, unreachable, busy) is left
out; with none left the homeostat has no queue reading and relies on times to first token
and in-flight counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lkn.decision.homeostat import Homeostat
from lkn.engines import HttpEngineClient
from lkn.pool import EnginePool

log = logging.getLogger(__name__)


class QueueWatcher:
    def __init__(self, pool: EnginePool, homeostat: Homeostat, interval: float) -> None:
        self._pool = pool
        self._homeostat = homeostat
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def poll(self) -> float | None:
        """The busiest engine's queue now (None: no engine reports one)."""
        readings = [
            await engine.client.waiting(self._interval)
            for engine in self._pool.engines
            if isinstance(engine.client, HttpEngineClient) and engine.client.supports_abort
        ]
        known = [r for r in readings if r is not None]
        waiting = max(known) if known else None
        self._homeostat.observe_queue(waiting)
        return waiting

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # a reading must never stop the watcher
                log.exception("engine queue reading failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
