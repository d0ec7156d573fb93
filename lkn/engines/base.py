"""What the core needs from an engine: the :class:`EngineClient` protocol.

:class:`~lkn.engines.client.HttpEngineClient` implements it over HTTP (SGLang, OpenAI-style
servers); the pool and the request lifecycle only ever see this protocol, so their tests run
against an in-process fake engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from lkn.types import Chunk, JSONObject, ProbeResult, Route


class EngineClient(Protocol):
    @property
    def name(self) -> str:
        """Stable name for logs, metrics and ``X-LKN-Engine`` (host:port for HTTP engines)."""
        ...

    @property
    def url(self) -> str:
        """The base URL (or another address) shown on ``/ready``."""
        ...

    @property
    def model_id(self) -> str | None:
        """The engine's served model name, once known (None: not learnt yet)."""
        ...

    @property
    def max_model_len(self) -> int | None: ...

    async def complete(
        self,
        route: Route | str,
        body: JSONObject,
        rid: str,
        deadline: float | None = None,
        answered: Callable[[], None] | None = None,
    ) -> tuple[bytes, JSONObject]:
        """One non-streamed request: the raw body and its parsed JSON. ``answered`` is called
        as soon as the engine's success status arrives, before the body is read."""
        ...

    def stream(
        self, route: Route, body: JSONObject, rid: str, deadline: float | None = None
    ) -> AsyncIterator[Chunk]:
        """Chunks until the engine's end marker; a stream cut short raises
        :class:`~lkn.errors.EngineError`. Closing it early tells the engine to drop ``rid``."""
        ...

    async def probe(
        self,
        route: Route,
        body: JSONObject,
        rid: str,
        top_k: int,
        tokens: int,
        deadline: float | None = None,
    ) -> ProbeResult: ...

    async def check_ready(self, timeout: float) -> bool:
        """Whether the engine takes requests; raises ``EngineUnavailable`` if unreachable,
        ``EngineTimeout`` if it did not answer in time."""
        ...

    def abort(self, rid: str) -> None:
        """Ask the engine to drop ``rid`` (fire and forget)."""
        ...

    async def close(self) -> None: ...
