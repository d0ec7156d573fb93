"""The host allow-list, against DNS rebinding: the REST API answers only to its own names.

A web page on ``http://rebind.example:8000`` whose name the attacker points at 127.0.0.1
(after the page has loaded) is, to the browser, same-origin with a gateway on the loopback:
its requests carry ``Host: rebind.example:8000`` and ``Origin: http://rebind.example:8000``.
An Origin check against the request's own Host (what :mod:`lkn.rest.cors` does for the
gateway's own pages) cannot tell them apart, so the Host header is checked first, before
CORS, authentication and routing, on every request.

``LKN_ALLOWED_HOSTS`` lists the host names and addresses allowed (the port is ignored;
``*`` allows any). Unset, they are the loopback names (``localhost``, ``127.0.0.1``,
``::1``) and the address the REST listener is bound to (``LKN_HOST``) unless that is every
interface (``0.0.0.0``, ``::``). Any other Host, or none, is answered **421 Misdirected
Request** (the request reached a server that does not serve that name) with an OpenAI error
body, code ``host_not_allowed``; nothing else runs for it, so it never reaches a generation,
``/ready``, ``/lkn/status.json`` or ``/metrics``.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from lkn.config import Settings
from lkn.errors import LknError
from lkn.rest.errors import Handler, error_response

LOOPBACK = ("localhost", "127.0.0.1", "::1")
_EVERY_INTERFACE = ("", "0.0.0.0", "::")


class HostNotAllowed(LknError):
    http_status = 421
    openai_type = "invalid_request_error"


def _bare(host: str) -> str:
    """A host name as compared: lower case, no IPv6 brackets, no final dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def host_of(header: str) -> str:
    """The host part of a Host header (``name``, ``name:port``, ``[v6]`` or ``[v6]:port``)."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        if end > 0 and (end + 1 == len(header) or header[end + 1] == ":"):
            return _bare(header[: end + 1])
        return header.lower()
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return _bare(header)


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names served (bare), or None for any (``*``)."""
    if "*" in settings.allowed_hosts:
        return None
    if settings.allowed_hosts:
        return frozenset(_bare(h) for h in settings.allowed_hosts)
    names = set(LOOPBACK)
    if _bare(settings.host) not in _EVERY_INTERFACE:
        names.add(_bare(settings.host))
    return frozenset(names)


class HostGuard:
    def __init__(self, settings: Settings) -> None:
        self.allowed = allowed_hosts(settings)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.allowed is not None:
            header = request.headers.get(hdrs.HOST)
            if header is None or host_of(header) not in self.allowed:
                shown = "no Host header" if header is None else f"the host {header[:100]!r}"
                return error_response(HostNotAllowed(
                    f"{shown} is not served here: the gateway answers only to the names in "
                    "LKN_ALLOWED_HOSTS (by default its loopback names and address)",
                    code="host_not_allowed"))
        return await handler(request)
