"""Engine clients: how the gateway talks to SGLang and OpenAI-compatible servers."""

from lkn.engines.client import EngineClient

__all__ = ["EngineClient"]
