"""Engine clients: how the gateway talks to SGLang and OpenAI-compatible servers."""

from lkn.engines.base import EngineClient
from lkn.engines.client import HttpEngineClient

__all__ = ["EngineClient", "HttpEngineClient"]
