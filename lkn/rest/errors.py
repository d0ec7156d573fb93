"""Errors on the REST surface: every failure becomes an OpenAI-shaped JSON error body."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from lkn.errors import BadRequest, BodyTooLarge, LknError, MethodNotAllowed, NotFound

log = logging.getLogger(__name__)

REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def error_payload(error: LknError) -> bytes:
    return json.dumps({"error": error.to_openai()}).encode()


def error_response(error: LknError) -> web.Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return web.Response(
        status=error.status(),
        body=error_payload(error),
        content_type="application/json",
        headers=headers,
    )


def _from_http(exc: web.HTTPException, request: web.Request) -> LknError:
    if exc.status == 413:
        return BodyTooLarge("the request body is too large", code="request_too_large")
    if exc.status == 404:
        return NotFound(f"no such endpoint: {request.path}", code="not_found")
    if exc.status == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}",
                                code="method_not_allowed")
    return BadRequest(exc.reason or "bad request")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LknError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc, request))
    except Exception:
        rid = request.get(REQUEST_ID, "-")
        log.exception("unexpected error rid=%s path=%s", rid, request.path)
        return error_response(LknError("internal error in the gateway", code="internal_error"))
