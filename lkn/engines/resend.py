"""A request on a kept connection the engine had closed: sent once more, on a new one.

llama.cpp's server closes idle connections after 5 s, and kept ones on its own terms; a
request that goes out on one it has just closed fails at once, before the engine read it
(3 such failures in 2,535 answers of one evaluation, 2 in 730 of another with the gateway's
keep-alive at 2 s). The engine client's connector (:class:`ReuseConnector`) marks a request
that goes out on a connection that has carried one before: only such a request is sent
again. A new connection that drops, or is refused, is the engine's failure, and the pool
decides what follows.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import Any

import aiohttp
from yarl import URL

#: The request :func:`post` is sending in this task: ``reused`` once it went out on a kept
#: connection.
_SENT: ContextVar[dict[str, bool] | None] = ContextVar("lkn_engine_request", default=None)


class ReuseConnector(aiohttp.TCPConnector):
    """A TCP connector that tells :func:`post` when a request goes out on a kept connection
    (one whose protocol has carried a request before). Cheaper than aiohttp's trace signals,
    which cost every request several awaits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._used: weakref.WeakSet[object] = weakref.WeakSet()

    async def connect(self, req: Any, *args: Any, **kwargs: Any) -> aiohttp.connector.Connection:
        connection = await super().connect(req, *args, **kwargs)
        protocol = connection.protocol
        if protocol is not None:
            if protocol in self._used:
                sent = _SENT.get()
                if sent is not None:
                    sent["reused"] = True
            else:
                self._used.add(protocol)
        return connection


async def post(session: aiohttp.ClientSession, url: URL, data: bytes, headers: dict[str, str],
               timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientResponse, bool]:  # fmt: skip
    """POST (on a session whose connector is a :class:`ReuseConnector`); the response, and
    whether it took a second send."""
    for attempt in (1, 2):
        sent: dict[str, bool] = {}
        token = _SENT.set(sent)
        try:
            response = await session.post(url, data=data, headers=headers, timeout=timeout)
            return response, attempt == 2
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2 or not sent.get("reused"):
                raise
        finally:
            _SENT.reset(token)
    raise AssertionError("unreachable")
