"""Who may see what on the REST surface.

With ``LKN_API_KEY`` set, every path needs the key except ``/health`` (a liveness probe),
``/metrics`` when ``LKN_METRICS_PUBLIC`` opens it to a scraper, and ``/ready``, which without
the key says only whether the gateway is ready (its engine details need the key). Responses
carry no ``Server`` version banner. ``X-LKN-Engine`` carries the engine's one name
(``engine-1``, or its address with ``LKN_ENGINE_HEADER=address``), the name ``/ready``,
``/lkn/status.json``, the logs and the metrics use too.
"""

from __future__ import annotations

from aiohttp import web

from lkn.errors import NoEngineAvailable, Unauthorized
from lkn.rest.errors import GATEWAY, Handler
from lkn.rest.status_page import PATHS as STATUS_PATHS

_SERVER = "lkn"


def bearer_token(request: web.Request) -> str | None:
    """The bearer token, or ``""`` for one that cannot be a key (not valid UTF-8)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    token = header[7:].strip()
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:  # aiohttp keeps undecodable header bytes as surrogates
        return ""
    return token


def _ready_summary(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    if gateway.ready():
        return web.json_response({"status": "ready"})
    retry = gateway.pool.retry_after()
    error = NoEngineAvailable("no inference engine is ready", retry_after=retry)
    return web.json_response({"status": "unavailable", "error": error.to_openai()}, status=503,
                             headers={"Retry-After": str(max(1, round(retry)))})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    path = request.path
    # The status page checks the key itself (also as HTTP Basic, which a browser can send).
    if path == "/health" or path in STATUS_PATHS or (
            path == "/metrics" and gateway.settings.metrics_public):
        return await handler(request)
    try:
        gateway.authorize(bearer_token(request))
    except Unauthorized:
        if path == "/ready":
            return _ready_summary(request)
        raise
    return await handler(request)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = _SERVER


def install(app: web.Application) -> None:
    """No version banner on any response of ``app``."""
    app.on_response_prepare.append(_headers)
