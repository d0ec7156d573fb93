"""Reading a JSON request body, bounded: size, time, media type, encoding, depth, numbers.

Every way a body can be wrong is a 4xx with an OpenAI error body, never a 500:

- ``Content-Type`` must be JSON (``application/json`` or ``application/*+json``, any
  parameters) or absent; anything else is 415 (SGLang refuses it too; ``curl -d`` without
  ``-H 'Content-Type: application/json'`` sends a form type and gets told so);
- the body must arrive within ``LKN_BODY_TIMEOUT`` seconds (408) and fit ``LKN_MAX_BODY_BYTES``;
- strict UTF-8: invalid bytes and UTF-8-encoded surrogates are 400, and so are ``\\ud800``
  escapes that leave a lone surrogate in a string (it could not be sent on as UTF-8);
- ``NaN``, ``Infinity`` and numbers that overflow to infinity are 400 (they are not JSON);
- nesting deeper than :data:`MAX_DEPTH` is 400 (and so is what Python's parser cannot nest).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import NoReturn

from aiohttp import web

from lkn.errors import BadRequest, BodyTooLarge
from lkn.values import JSONValue

#: Deepest nesting of objects and arrays a request may have (OpenAI bodies need about 6).
MAX_DEPTH = 64
_JSON_TYPES = ("application/json",)


class UnsupportedMediaType(BadRequest):
    http_status = 415


class BodyTimeout(BadRequest):
    http_status = 408


def _invalid(message: str) -> NoReturn:
    raise BadRequest(f"the request body is not valid JSON: {message}", code="invalid_json")


def _refuse_constant(name: str) -> NoReturn:
    _invalid(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _invalid(f"the number {text[:40]} is out of range")
    return value


#: One decoder for every body (``json.loads`` with hooks builds one per call).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def check_media_type(request: web.Request) -> None:
    if "Content-Type" not in request.headers:
        return
    media = request.content_type.lower()
    if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"the request body must be JSON: send 'Content-Type: application/json' (got "
        f"{media[:80]!r})", code="unsupported_media_type",
    )


def _check_tree(value: JSONValue) -> None:
    """Depth and lone surrogates, without recursion (one pass over the containers)."""
    stack: list[tuple[JSONValue, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the request body is nested deeper than {MAX_DEPTH} levels",
                             code="invalid_json")
        items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[arg-type]
        for key, item in items:
            if isinstance(key, str) and not key.isascii():
                _check_text(key)
            if isinstance(item, str):
                if not item.isascii():
                    _check_text(item)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the request body has a string with a lone surrogate (\\ud800-"
                         "\\udfff): it is not valid Unicode", code="invalid_json") from None


def parse_json(raw: bytes) -> JSONValue:
    """Decode and check one body (see the module docstring); raise :class:`BadRequest`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not valid UTF-8 (byte {exc.start})",
                         code="invalid_encoding") from None
    try:
        if text.startswith("\ufeff"):  # as json.loads says it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        body: JSONValue = _DECODER.decode(text)
    except RecursionError:
        raise BadRequest(f"the request body is nested deeper than {MAX_DEPTH} levels",
                         code="invalid_json") from None
    except ValueError as exc:
        _invalid(str(exc)[:200])
    if isinstance(body, (dict, list)):
        _check_tree(body)
    elif isinstance(body, str) and not body.isascii():
        _check_text(body)
    return body


async def read_json(request: web.Request, limit: int, timeout: float) -> JSONValue:
    """The request's JSON body, read within ``timeout`` seconds and ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(
            f"the request body is {request.content_length} bytes; the limit is {limit}",
            code="request_too_large",
        )
    check_media_type(request)
    try:
        if request.content.is_eof():  # all of it has arrived: reading cannot wait
            raw = await request.read()
        else:
            raw = await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout:g} s",
                          code="body_timeout") from None
    if not raw:
        raise BadRequest("the request body is empty: send a JSON object", code="invalid_json")
    return parse_json(raw)
