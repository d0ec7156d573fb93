"""Messages that do not decode are INVALID_ARGUMENT, after authentication, never UNKNOWN.

grpc decodes a request before any servicer code runs; when protobuf refuses the bytes
(random bytes, a wrong wire type, invalid UTF-8 in a string field) grpc logs a traceback and
answers UNKNOWN. :class:`DecodeGuard` gives every method a decoder that cannot raise: an
undecodable message becomes a marker, and the call is answered UNAUTHENTICATED without a
valid key (the key is checked first, as for any call) and INVALID_ARGUMENT with it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc

from lkn.errors import LknError
from lkn.gateway import Gateway
from lkn.rpc.errors import Continuation, Handler, bearer_token, status_of

log = logging.getLogger(__name__)


class _Undecodable:
    """What a request that protobuf could not decode becomes."""


_UNDECODABLE = _Undecodable()


def _safe(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decoder(raw: bytes) -> Any:
        try:
            return decode(raw)
        except Exception:
            return _UNDECODABLE

    return decoder


class DecodeGuard(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> NoReturn:
        try:
            self._gateway.authorize(bearer_token(context))
        except LknError as exc:
            code, details, metadata = status_of(exc)
            await context.abort(code, details, metadata)
        log.info("grpc request not decodable method=%s", method)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            "the request message could not be decoded (not a valid "
                            "protobuf message of the method's request type)")

    async def intercept_service(self, continuation: Continuation,
                                details: grpc.HandlerCallDetails) -> Handler:  # fmt: skip
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = str(details.method).rsplit("/", 1)[-1]
        decoder = _safe(handler.request_deserializer)
        if handler.unary_unary is not None:
            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                request_deserializer=decoder,
                unary_unary=self._single(handler.unary_unary, method))
        if handler.unary_stream is not None:
            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                request_deserializer=decoder,
                unary_stream=self._single(handler.unary_stream, method))
        kind = "stream_unary" if handler.stream_unary is not None else "stream_stream"
        behaviour = getattr(handler, kind)
        return handler._replace(  # type: ignore[attr-defined,no-any-return]
            request_deserializer=decoder, **{kind: self._streamed(behaviour, method)})

    def _single(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behaviour):
            async def replies(request: Any, context: Any) -> AsyncIterator[Any]:
                if request is _UNDECODABLE:
                    await self._refuse(context, method)
                async for reply in behaviour(request, context):
                    yield reply

            return replies

        async def call(request: Any, context: Any) -> Any:
            if request is _UNDECODABLE:
                await self._refuse(context, method)
            return await behaviour(request, context)

        return call

    def _streamed(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        guard = self

        async def checked(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for request in requests:
                if request is _UNDECODABLE:
                    await guard._refuse(context, method)
                yield request

        if inspect.isasyncgenfunction(behaviour):
            async def replies(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
                async for reply in behaviour(checked(requests, context), context):
                    yield reply

            return replies

        async def call(requests: AsyncIterator[Any], context: Any) -> Any:
            return await behaviour(checked(requests, context), context)

        return call
