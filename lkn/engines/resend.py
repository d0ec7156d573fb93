"""A request on a kept connection the engine had closed: sent once more, on a new one.

llama.cpp's server closes idle connections after 5 s, and kept ones on its own terms; a
request that goes out on one it has just closed fails at once, before the engine read it
(3 such failures in 2,535 answers of one evaluation, 2 in 730 of another with the gateway's
keep-alive at 2 s). aiohttp tells which connection a request went out on through its trace
signals: only a request on a *kept* connection is sent again. A new connection that drops,
or is refused, is the engine's failure, and the pool decides what follows.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
from yarl import URL


async def _on_reuse(_session: aiohttp.ClientSession, context: SimpleNamespace,
                    _params: aiohttp.TraceConnectionReuseconnParams) -> None:  # fmt: skip
    """Marks a request that went out on a kept connection."""
    sent = context.trace_request_ctx
    if isinstance(sent, dict):
        sent["reused"] = True


#: The session's trace config (``ClientSession(trace_configs=[REUSE_TRACE])``).
REUSE_TRACE = aiohttp.TraceConfig()
REUSE_TRACE.on_connection_reuseconn.append(_on_reuse)


async def post(session: aiohttp.ClientSession, url: URL, data: bytes, headers: dict[str, str],
               timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientResponse, bool]:  # fmt: skip
    """POST; the response, and whether it took a second send."""
    for attempt in (1, 2):
        sent: dict[str, bool] = {}
        try:
            response = await session.post(url, data=data, headers=headers, timeout=timeout,
                                          trace_request_ctx=sent)
            return response, attempt == 2
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if attempt == 2 or not sent.get("reused"):
                raise
    raise AssertionError("unreachable")
