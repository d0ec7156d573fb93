"""Client connections on the REST port, bounded in number and in time.

- at most ``LKN_MAX_CONNECTIONS`` open connections; one more is closed at once;
- a request's headers must be complete within ``LKN_HEADER_TIMEOUT`` seconds of their first
  byte (a client trickling a header byte every few seconds is closed);
- an idle connection (no request yet, or keep-alive after a reply) is closed after
  ``LKN_IDLE_TIMEOUT`` seconds (aiohttp's keep-alive timeout, which also runs from the start);
- the body has ``LKN_BODY_TIMEOUT`` seconds once the handler reads it (``lkn.rest.body``);
- malformed HTTP is answered with an OpenAI error body, logged on one line without a
  traceback and without the request's bytes.

Counted in ``lkn_http_connections_open`` and ``lkn_http_connections_closed{reason}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CollectorRegistry, Counter, Gauge

from lkn.config import Settings

log = logging.getLogger(__name__)


class ConnectionGuard:
    """The open connections of one REST server, and its limits."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.max_connections = settings.max_connections
        self.header_timeout = settings.header_timeout
        self.idle_timeout = settings.idle_timeout
        self._open: set[RequestHandler] = set()
        self.open_gauge = Gauge("lkn_http_connections_open", "Open client connections (REST).",
                                registry=registry)
        self.closed = Counter(
            "lkn_http_connections_closed",
            "Client connections the gateway closed, by reason (limit, header_timeout).",
            ("reason",), registry=registry,
        )

    @property
    def open_count(self) -> int:
        return len(self._open)

    def admit(self, handler: RequestHandler) -> bool:
        if len(self._open) >= self.max_connections:
            self.closed.labels("limit").inc()
            return False
        self._open.add(handler)
        self.open_gauge.set(len(self._open))
        return True

    def release(self, handler: RequestHandler) -> None:
        if handler in self._open:
            self._open.discard(handler)
            self.open_gauge.set(len(self._open))


class _Handler(RequestHandler):
    """aiohttp's connection handler with the guard's limits and the OpenAI error shape."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.admit(self):
            log.warning("connection refused reason=limit open=%d", self._guard.open_count)
            self.force_close()
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.release(self)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes while no request is being handled are a request's headers: start their clock.
        if self._header_timer is None and self._current_request is None:
            self._header_timer = asyncio.get_running_loop().call_later(
                self._guard.header_timeout, self._headers_due, self._request_count
            )
        super().data_received(data)

    def _headers_due(self, parsed_before: int) -> None:
        self._header_timer = None
        if self._request_count == parsed_before and self._current_request is None:
            self._guard.closed.labels("header_timeout").inc()
            log.info("connection closed reason=header_timeout after=%.1fs",
                     self._guard.header_timeout)
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The parser's message can quote the request's bytes: log the kind only.
        log.info("malformed http request status=%d error=%s", status,
                 type(exc).__name__ if exc is not None else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; the connection is dropped")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {"error": {"message": f"malformed HTTP request ({status} {phrase})".strip(),
                          "type": kind, "param": None, "code": status}}
        response = web.Response(status=status, body=json.dumps(body).encode(),
                                content_type="application/json", headers={"Server": "lkn"})
        response.force_close()
        return response


class BoundedSite(web.TCPSite):
    """A TCP site whose connections are :class:`_Handler` under one :class:`ConnectionGuard`."""

    def __init__(self, runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int,
                 backlog: int, reuse_port: bool | None) -> None:
        super().__init__(runner, host, port, backlog=backlog, reuse_port=reuse_port)
        self._guard = guard
        self._listen = (host, port, backlog, reuse_port)

    def _protocol(self) -> _Handler:
        server = self._runner.server
        assert server is not None
        return _Handler(server, self._guard, loop=asyncio.get_running_loop(),
                        keepalive_timeout=self._guard.idle_timeout, access_log=None)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner (cleanup stops it)
        host, port, backlog, reuse_port = self._listen
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, host, port, backlog=backlog, reuse_address=True,
            reuse_port=reuse_port, family=socket.AF_UNSPEC,
        )
