"""REST front-end: the OpenAI HTTP/SSE surface on aiohttp."""

from lkn.rest.app import create_app

__all__ = ["create_app"]
