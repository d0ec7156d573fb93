"""The gRPC server's bounds, equal to REST's, and the key on reflection.

- Connections: at most ``LKN_MAX_CONNECTIONS`` open at once (REST's cap, counted apart);
  more are refused before their handshake.
- Calls at once: ``LKN_MAX_CONNECTIONS`` over all connections (``maximum_concurrent_rpcs``;
  a REST connection carries one request at a time, so REST has as many at most); more are
  answered ``RESOURCE_EXHAUSTED``. Generations are then admitted like REST's, up to
  ``LKN_MAX_CONCURRENCY`` for both front-ends together.
- Streams on one connection: ``LKN_GRPC_MAX_STREAMS`` (HTTP/2 ``SETTINGS_MAX_CONCURRENT_STREAMS``;
  a client queues the rest).
- Connection age: after ``LKN_GRPC_MAX_CONNECTION_AGE`` seconds a connection is asked to go
  away (clients reconnect for new calls), and its calls have ``LKN_GRPC_CONNECTION_AGE_GRACE``
  seconds more before it is closed. This is what bounds a health ``Watch``, which never ends
  on its own and keeps its connection from ever being idle (``LKN_IDLE_TIMEOUT`` closes idle
  connections only).
- Reflection: with ``LKN_API_KEY`` set it needs the key like the gateway's own methods (it
  describes the whole API); health ``Check`` and ``Watch`` stay open for load balancers and
  orchestrators, and say only SERVING or NOT_SERVING.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from lkn.config import Settings
from lkn.errors import LknError
from lkn.gateway import Gateway
from lkn.rpc.errors import Continuation, Handler, bearer_token, status_of

REFLECTION = "/grpc.reflection."


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The channel arguments of the gateway's gRPC server."""
    return [
        # Never share the port silently with another process (only with sibling workers).
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        # An idle client connection is closed like an idle REST keep-alive connection.
        ("grpc.max_connection_idle_ms", _ms(settings.idle_timeout)),
        ("grpc.max_allowed_incoming_connections", settings.max_connections),
        ("grpc.max_concurrent_streams", settings.grpc_max_streams),
        ("grpc.max_connection_age_ms", _ms(settings.grpc_max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.grpc_connection_age_grace)),
    ]


def max_calls(settings: Settings) -> int:
    """Calls in progress at once over all connections (``maximum_concurrent_rpcs``)."""
    return settings.max_connections


class ReflectionKey(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """With an API key set, reflection calls without it are answered UNAUTHENTICATED."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def intercept_service(self, continuation: Continuation,
                                details: grpc.HandlerCallDetails) -> Handler:  # fmt: skip
        handler = await continuation(details)
        if (handler is None or handler.stream_stream is None
                or self._gateway.settings.api_key is None
                or not str(details.method).startswith(REFLECTION)):
            return handler
        return handler._replace(  # type: ignore[attr-defined,no-any-return]
            stream_stream=self._keyed(handler.stream_stream))

    def _keyed(self, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        gateway = self._gateway

        async def replies(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            try:
                gateway.authorize(bearer_token(context))
            except LknError as exc:
                code, message, metadata = status_of(exc)
                await context.abort(code, message, metadata)
            result = behaviour(requests, context)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                async for reply in result:
                    yield reply

        return replies
