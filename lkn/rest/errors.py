"""Errors on the REST surface: every failure becomes an OpenAI-shaped JSON error body, and
every refused generation request is counted and logged once."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from lkn.errors import (
    BadRequest,
    BodyTooLarge,
    LknError,
    MethodNotAllowed,
    NotFound,
    is_counted,
)
from lkn.gateway import Gateway

log = logging.getLogger(__name__)

GATEWAY = web.AppKey("gateway", Gateway)
REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: What a client sees for a bug in the gateway (the traceback goes to the log only).
INTERNAL_ERROR = LknError("internal error in the gateway", code="internal_error")

#: Paths whose refusals are counted as requests, with their route label.
_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/lkn/probe": "probe",
}


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


def _reject(request: web.Request, error: Exception) -> None:
    """Count and log a refusal the request's exchange has not (a bug: with its traceback)."""
    if is_counted(error):
        return
    route = _ROUTES.get(request.path)
    rid = request.get(REQUEST_ID, "-")
    if route is not None:
        request.app[GATEWAY].reject("rest", route, error, rid)
    elif not isinstance(error, LknError):
        log.exception("unexpected error rid=%s path=%s", rid, request.path)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LknError as exc:
        _reject(request, exc)
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _from_http(exc, request)
        _reject(request, error)
        return error_response(error)
    except Exception as exc:
        _reject(request, exc)
        return error_response(INTERNAL_ERROR)
