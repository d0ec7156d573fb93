"""What the core needs from an engine: the :class:`EngineClient` protocol.

:class:`~lkn.engines.client.HttpEngineClient` implements it over HTTP (SGLang, OpenAI-style
servers); the pool and the request lifecycle only ever see this protocol, so their tests run
against an in-process fake engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from lkn.values import Chunk, JSONObject, ProbeResult, Route


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


class DelegatingEngine:
    """An engine that forwards every call to ``client``: the base of the wrappers the core
    puts around an engine for one request (they override only what they watch)."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def url(self) -> str:
        return self.client.url

    @property
    def model_id(self) -> str | None:
        return self.client.model_id

    @property
    def max_model_len(self) -> int | None:
        return self.client.max_model_len

    async def complete(
        self,
        route: Route | str,
        body: JSONObject,
        rid: str,
        deadline: float | None = None,
        answered: Callable[[], None] | None = None,
    ) -> tuple[bytes, JSONObject]:
        return await self.client.complete(route, body, rid, deadline, answered)

    def stream(
        self, route: Route, body: JSONObject, rid: str, deadline: float | None = None
    ) -> AsyncIterator[Chunk]:
        return self.client.stream(route, body, rid, deadline)

    async def probe(
        self,
        route: Route,
        body: JSONObject,
        rid: str,
        top_k: int,
        tokens: int,
        deadline: float | None = None,
    ) -> ProbeResult:
        return await self.client.probe(route, body, rid, top_k, tokens, deadline)

    async def check_ready(self, timeout: float) -> bool:
        return await self.client.check_ready(timeout)

    def abort(self, rid: str) -> None:
        self.client.abort(rid)

    async def close(self) -> None:
        await self.client.close()
