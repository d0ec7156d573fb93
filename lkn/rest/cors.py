"""CORS for browsers that call the REST API directly (Open WebUI's Direct Connections).

Off by default: ``LKN_CORS_ORIGINS`` lists the allowed origins (``*`` for any). Then:

- a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an
  allowed origin is answered 204 with the allowed method and the requested headers, before
  routing and authentication (browsers send no credentials on a preflight); from any other
  origin it gets 403 and no CORS headers;
- every response to an allowed origin carries ``Access-Control-Allow-Origin`` (the origin
  itself), ``Vary: Origin`` and exposes the gateway's headers (``X-LKN-*``, ``X-Request-Id``,
  ``Retry-After``), streamed answers included (the headers are added as a response starts);
- a request whose ``Origin`` is neither allowed nor the gateway's own is refused with 403,
  CORS on or off: a web page in a browser cannot make the gateway generate for it (a POST
  with a "simple" content type needs no preflight).

Requests without an ``Origin`` header (SDKs, curl, Open WebUI's server) are not affected.

"The gateway's own" origin is the request's own ``Host``, which a DNS-rebinding page
controls (``Host: rebind.example:8000`` with ``Origin: http://rebind.example:8000``): that
comparison is sound only because :mod:`lkn.rest.hosts` has already refused every Host not in
``LKN_ALLOWED_HOSTS`` (its middleware runs before this one). ``LKN_ALLOWED_HOSTS=*`` gives
that protection up.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from lkn.errors import LknError
from lkn.rest.errors import Handler, error_payload

_EXPOSED = ", ".join((
    "X-Request-Id", "X-LKN-Mode", "X-LKN-Strategy", "X-LKN-Score", "X-LKN-Engine",
    "X-LKN-Applied", "X-LKN-Fallback", "X-LKN-Shed", "Retry-After",
))  # fmt: skip
_METHODS = "GET, POST, OPTIONS"
_MAX_AGE = "600"


class OriginNotAllowed(LknError):
    http_status = 403


def _same_origin(request: web.Request, origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.netloc.lower() == request.host.lower() and parts.scheme == request.scheme


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")

    def allowed(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    def _refusal(self, origin: str) -> web.Response:
        error = OriginNotAllowed(
            f"requests from the origin {origin!r} are not allowed (LKN_CORS_ORIGINS)",
            code="origin_not_allowed",
        )
        return web.Response(status=403, body=error_payload(error),
                            content_type="application/json")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not self.allowed(origin):
                return self._refusal(origin)
            headers = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Max-Age": _MAX_AGE,
                "Vary": "Origin",
            }
            asked = request.headers.get("Access-Control-Request-Headers")
            if asked:
                headers["Access-Control-Allow-Headers"] = asked
            return web.Response(status=204, headers=headers)
        if not self.allowed(origin) and not _same_origin(request, origin):
            return self._refusal(origin)
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Adds the CORS headers to every response for an allowed origin as it starts."""
        origin = request.headers.get("Origin")
        if origin is not None and self.allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED
            response.headers.add("Vary", "Origin")


def install(app: web.Application, cors: Cors) -> None:
    """Registers the header hook (the middleware is passed to the application first)."""
    if cors.any or cors.origins:
        app.on_response_prepare.append(cors.on_prepare)
