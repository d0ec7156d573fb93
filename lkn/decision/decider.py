"""Picks the strategy for a request and applies the ANALITICO intervention."""

from __future__ import annotations

from lkn.config import DecisionSettings
from lkn.engines import EngineClient
from lkn.metrics import Metrics
from lkn.types import PASSTHROUGH, Decision, GenerateRequest, JSONObject, Mode


class Decider:
    def __init__(self, settings: DecisionSettings, metrics: Metrics) -> None:
        self.settings = settings
        self._metrics = metrics

    @property
    def needs_engine(self) -> bool:
        """Whether decisions probe the engine (then they run on the generating engine)."""
        return self.settings.mode != "passthrough" and self.settings.strategy != "rules"

    async def decide(
        self,
        request: GenerateRequest,
        engine: EngineClient | None,
        deadline: float | None,
        override: str | None = None,
    ) -> Decision:
        if self.settings.mode == "passthrough":
            return PASSTHROUGH
        return Decision(mode=Mode.FLUIDO, strategy="rules")

    def apply(self, decision: Decision, body: JSONObject) -> JSONObject:
        return body
