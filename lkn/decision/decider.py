"""Decides FLUIDO or ANALITICO for each request, which intervention it gets, and applies it.

Order of precedence: ``LKN_MODE=passthrough`` (no decision at all), Open WebUI housekeeping
(``### Task:``, always FLUIDO, never probed, even on a ``+analitico`` model variant), an
intervention the request names, the mode override (both shed like any care: :mod:`.asked`),
then the configured strategy (``rules``, ``entropy`` or ``hybrid``); :mod:`.chooser` picks the
intervention (``LKN_POLICY``). A failed or late probe falls back to the rules, never failing a
request. Every decision is counted once and logged at debug level (``lkn.decision``, no prompt
text); the request's info line names its mode and signals.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lkn.config import DecisionSettings
from lkn.care import asked
from lkn.decision import rules
from lkn.decision.homeostat import Homeostat, Shed
from lkn.care.chooser import CareChooser
from lkn.decision.probe import run_probe
from lkn.decision.strategies import Probed, strategy_named
from lkn.engines import EngineClient
from lkn.metrics import Metrics
from lkn.values import HOUSEKEEPING, PASSTHROUGH, Decision, GenerateRequest, JSONObject, Mode

log = logging.getLogger("lkn.decision")

_OVERRIDES = {"fluido": Mode.FLUIDO, "analitico": Mode.ANALITICO}
_SHED_NAMES = {Shed.CHEAPER: "cheaper", Shed.FLUIDO: "fluido"}


class Decider:
    """One per gateway, shared by every front-end; stateless apart from the metrics it feeds."""

    def __init__(self, settings: DecisionSettings, metrics: Metrics) -> None:
        self.settings = settings
        #: The configured strategy (``LKN_DECISION_STRATEGY``), chosen once.
        self.strategy = strategy_named(settings.strategy)
        self._metrics = metrics
        self.homeostat = Homeostat(settings, metrics.registry)
        self.chooser = CareChooser(settings)

    @property
    def needs_engine(self) -> bool:
        """Whether decisions probe the engine (then they run on the generating engine)."""
        return self.settings.mode != "passthrough" and self.strategy.probes

    async def decide(
        self,
        request: GenerateRequest,
        engine: EngineClient | None,
        deadline: float | None,
        override: str | None = None,
    ) -> Decision:
        """The decision for ``request``; ``engine`` is the one that will generate (probes).

        Never raises for a failed probe (the rules decide instead); a cancellation of the
        caller propagates.
        """
        if self.settings.mode == "passthrough":
            return PASSTHROUGH
        if request.intervention is not None and not rules.is_housekeeping(request):
            shed = _SHED_NAMES.get(self.homeostat.level())
            decision, tokens = self.chooser.requested(request.intervention, shed), None
        else:
            decided, tokens = await self._decide(request, engine, deadline, override)
            model = request.body.get("model")
            decision = self.chooser.with_care(decided, model if isinstance(model, str) else None)
        self._report(decision, request, engine, tokens)
        return decision

    async def _decide(
        self,
        request: GenerateRequest,
        engine: EngineClient | None,
        deadline: float | None,
        override: str | None,
    ) -> tuple[Decision, int | None]:
        applied = not self.settings.shadow
        if rules.is_housekeeping(request):
            return Decision(Mode.FLUIDO, HOUSEKEEPING, signals=("housekeeping",),
                            applied=applied), None
        forced, shed = _OVERRIDES.get((override or "").lower()), self.homeostat.level()
        if forced is not None:
            # An explicit client choice is not a homeostatic guess: shadow does not hold it
            # back; but it is care like any other, shed when the engines saturate.
            return asked.overridden(forced, _SHED_NAMES.get(shed)), None
        if shed is Shed.FLUIDO:
            return Decision(Mode.FLUIDO, self.strategy.name, signals=("shed",), applied=applied,
                            fallback="shed: engines saturated", shed="fluido"), None
        verdict = rules.evaluate_request(request, self.settings.max_tokens_fluido)
        decision = await self._by_strategy(request, verdict, engine, deadline, shed)
        return decision, verdict.estimated_tokens

    async def _by_strategy(self, request: GenerateRequest, verdict: rules.RuleVerdict,
                           engine: EngineClient | None, deadline: float | None,
                           shed: Shed) -> Decision:  # fmt: skip
        """The strategy's decision: the rules', or the probe's when it wants one (the rules'
        when the probe is shed or fails)."""
        strategy = self.strategy
        by_rules = strategy.decide(verdict, None, not self.settings.shadow)
        if not strategy.wants_probe(verdict):
            if strategy.probes:  # a scored strategy's rate counts it too
                self.homeostat.record_unscored(verdict.mode, shed)
            return replace(by_rules, shed="cheaper") if shed else by_rules
        if shed is Shed.CHEAPER:
            return replace(by_rules, shed="cheaper", fallback="shed: probe skipped")
        outcome = await run_probe(request, engine, self.settings, deadline)
        result, reading = outcome.result, outcome.reading
        if reading is None or result is None:
            self._metrics.child(self._metrics.probe_fallbacks, outcome.reason or "failed").inc()
            latency = result.latency_ms if result is not None else None
            return replace(by_rules, fallback=outcome.fallback, probe_latency_ms=latency)
        self._metrics.probe_latency.observe(result.latency_ms / 1000.0)
        self._metrics.entropy.observe(reading.score)
        judged = self.homeostat.judge(reading.score, request, verdict.signals)
        return strategy.decide(verdict, Probed(result, reading, judged), by_rules.applied)

    def _report(self, decision: Decision, request: GenerateRequest,
                engine: EngineClient | None, tokens: int | None) -> None:  # fmt: skip
        applied = "true" if decision.applied else "false"
        self._metrics.child(self._metrics.decisions, decision.mode.value, decision.strategy, applied).inc()
        self._metrics.child(self._metrics.interventions, decision.intervention, applied).inc()
        if not log.isEnabledFor(logging.DEBUG):  # its arguments cost more than the check
            return
        log.debug(
            "decision rid=%s engine=%s mode=%s strategy=%s score=%s threshold=%s signals=%s "
            "fallback=%s applied=%s probe_ms=%s est_tokens=%s intervention=%s policy=%r",
            request.request_id,
            engine.name if engine is not None else "-",
            decision.mode.value,
            decision.strategy,
            decision.score_text or "-",
            "-" if decision.threshold is None else f"{decision.threshold:.4f}",
            ",".join(decision.signals) or "-",
            decision.fallback or "-",
            applied,
            "-" if decision.probe_latency_ms is None else f"{decision.probe_latency_ms:.1f}",
            "-" if tokens is None else tokens,
            decision.intervention,
            decision.policy or "-",
        )

    def apply(self, decision: Decision, body: JSONObject) -> JSONObject:
        """The engine body for ``decision``: ``body`` with its intervention, if applied."""
        return self.chooser.apply(decision, body)
