"""Errors on the gRPC surface: every failure becomes a status code, translated here once.

:func:`unary` and :func:`stream` wrap the servicer's methods; they also check the API key.
An :class:`LknError` becomes ``grpc.StatusCode[error.grpc_code]`` with the error's message;
a known retry delay goes into the message and into the trailing metadata as
``retry-after-ms``. Anything else is a bug: logged once, reported as ``INTERNAL``.
Cancellation is never caught, so a client that leaves cancels the work under way.
"""

from __future__ import annotations

import functools
import logging
import math
from contextlib import aclosing
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeAlias, TypeVar

import grpc

from lkn.errors import LknError, is_counted
from lkn.gateway import Gateway

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Req, Resp]
Metadata = tuple[tuple[str, str], ...]
#: What a server interceptor gets and returns.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


class Servicer(Protocol):
    @property
    def gateway(self) -> Gateway: ...


S = TypeVar("S", bound=Servicer)
UnaryMethod = Callable[[S, Req, Context[Req, Resp]], Awaitable[Resp]]
StreamMethod = Callable[[S, Req, Context[Req, Resp]], AsyncGenerator[Resp, None]]
StreamHandler = Callable[[S, Req, Context[Req, Resp]], Awaitable[None]]


def status_of(error: LknError) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status code, details and trailing metadata that report ``error``."""
    code = grpc.StatusCode[error.grpc_code]
    details = error.message
    metadata: list[tuple[str, str]] = [("lkn-error-type", error.openai_type)]
    if error.retry_after is not None:
        millis = max(1, math.ceil(error.retry_after * 1000))
        details = f"{details} (retry after {millis} ms)"
        metadata.append(("retry-after-ms", str(millis)))
    return code, details, tuple(metadata)


def bearer_token(context: Context[Req, Resp]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value[7:].strip() if value[:7].lower() == "bearer " else None
    return None


def _route(method: str, request: object) -> str | None:
    """The route label a refused call is counted under (None: not a generation call)."""
    if method == "Probe":
        return "probe"
    if method != "Generate":
        return None
    which = getattr(request, "WhichOneof", None)
    return "completions" if which is not None and which("input") == "prompt" else "chat"


async def _fail(
    gateway: Gateway, context: Context[Req, Resp], exc: Exception, method: str, request: object
) -> NoReturn:
    if not is_counted(exc):
        # Refused before the request's exchange began (bad key, bad input): count it here.
        route = _route(method, request)
        if route is not None:
            gateway.reject("grpc", route, exc)
        elif not isinstance(exc, LknError):
            rid = getattr(request, "request_id", "") or "-"
            log.exception("unexpected error method=%s client_request_id=%s", method, rid)
    if not isinstance(exc, LknError):
        exc = LknError("internal error in the gateway", code="internal_error")
    code, details, metadata = status_of(exc)
    await context.abort(code, details, metadata)


def unary(method: UnaryMethod[S, Req, Resp]) -> UnaryMethod[S, Req, Resp]:
    """Check the API key, run ``method``, and turn its failure into a status code."""

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context[Req, Resp]) -> Resp:
        try:
            self.gateway.authorize(bearer_token(context))
            return await method(self, request, context)
        except Exception as exc:
            await _fail(self.gateway, context, exc, method.__name__, request)

    return handler


def stream(method: StreamMethod[S, Req, Resp]) -> StreamHandler[S, Req, Resp]:
    """Like :func:`unary` for server streams: a failure after messages were sent still ends
    the stream with its status code, never with OK.

    The replies are written from this one coroutine (not handed to grpc as a generator), so
    a cancelled call always unwinds through ``method``'s ``finally`` blocks at once.
    """

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context[Req, Resp]) -> None:
        try:
            self.gateway.authorize(bearer_token(context))
            async with aclosing(method(self, request, context)) as replies:
                async for reply in replies:
                    await context.write(reply)
        except Exception as exc:
            await _fail(self.gateway, context, exc, method.__name__, request)

    return handler
