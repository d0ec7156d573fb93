"""The homeostat: the rate of care at its set point, and care shed when engines saturate.

One per gateway, owned by the decider. It ranks each entropy score within its language and
rules category (:mod:`.normalise`), compares it with the threshold the rate controller holds
(:mod:`.rate`), and says how much care the engines can afford now (:mod:`.shedding`). The
gateway feeds it times to first token, in-flight counts and engine queues. Its state goes to
``/metrics``, ``/ready`` and probe responses.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from lkn.config import DecisionSettings
from lkn.decision import rules
from lkn.decision.language import language_of
from lkn.decision.normalise import RAW, ScoreNormaliser, category_of
from lkn.decision.rate import RateController
from lkn.decision.shedding import Load, LoadShedder, Shed
from lkn.values import GenerateRequest, JSONObject, Mode

__all__ = ["Homeostat", "Judgement", "Load", "Shed"]

_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Gauge]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Judgement:
    #: The score the threshold is compared with (ranked within ``group`` when normalising).
    score: float
    group: str | None
    threshold: float
    uncertain: bool


class Homeostat:
    def __init__(
        self,
        settings: DecisionSettings,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings.homeostat
        self.base_threshold = settings.entropy_threshold
        self._normalise = settings.score_normalise
        self._normaliser = ScoreNormaliser()
        # Ranks are uniform in [0, 1] within a group: with a set point, the threshold on them
        # starts at their 1 - rate quantile, before any window has filled.
        target = settings.homeostat.target_rate
        start = 1.0 - target if self._normalise and target is not None else self.base_threshold
        self.rate = RateController(settings.homeostat, start, clock)
        self.shedder = LoadShedder(settings.homeostat, clock)
        if registry is not None:
            self.export(registry)

    @property
    def threshold(self) -> float:
        return self.rate.threshold

    def level(self) -> Shed:
        return self.shedder.level()

    def judge(
        self, raw: float, request: GenerateRequest, signals: tuple[str, ...]
    ) -> Judgement:
        """Rank ``raw``, compare it with the threshold, and count the outcome."""
        score, group = raw, None
        if self._normalise:
            text, _ = rules.rule_text(request)
            ranked = self._normaliser.normalise(raw, language_of(text), category_of(signals))
            score, group = ranked.score, ranked.group
        # A raw score whose language's ranks are cold meets the configured threshold and
        # stays out of the controller's window of ranks.
        cold = group == RAW
        threshold = self.base_threshold if cold else self.rate.threshold
        uncertain = score > threshold
        self.rate.record(score, uncertain, comparable=not cold)
        return Judgement(score, group, threshold, uncertain)

    def record_unscored(self, mode: Mode, shed: Shed) -> None:
        """A probing strategy's decision made without a score (hybrid's rules ANALITICO)."""
        if shed is Shed.NONE:
            self.rate.record(None, mode is Mode.ANALITICO)

    # ---- load, fed by the gateway ---------------------------------------------------

    def watch(self, source: Callable[[], Load]) -> None:
        self.shedder.watch(source)

    def observe_ttft(self, seconds: float) -> None:
        self.shedder.observe_ttft(seconds)

    def observe_queue(self, waiting: float | None) -> None:
        self.shedder.observe_queue(waiting)

    # ---- state --------------------------------------------------------------------

    def state(self) -> JSONObject:
        """Set points, current threshold, load and shed level."""
        s, shedder = self.settings, self.shedder
        load = shedder.load()
        return {
            "target_rate": s.target_rate,
            "threshold": self.rate.threshold,
            "base_threshold": self.base_threshold,
            "realised_rate": self.rate.realised_rate,
            "window": self.rate.window,
            "shed_level": shedder.current.name.lower(),
            "load": {
                "in_flight": load.in_flight,
                "limit": shedder.limit(load),
                "queue": shedder.queue,
                "ttft_p90_s": shedder.ttft_p90(),
                "pressure": shedder.pressure(),
            },
            "set_points": {
                "queue": s.queue_set_point,
                "ttft_s": s.ttft_set_point,
                "restore": s.restore,
                "shedding": s.shed,
            },
        }

    def export(self, registry: CollectorRegistry) -> None:
        """Gauges read at scrape time; a later homeostat on the same registry takes them over."""
        s, rate, shedder = self.settings, self.rate, self.shedder

        def nan(value: float | None) -> float:
            return math.nan if value is None else value

        gauges: tuple[tuple[str, str, Callable[[], float]], ...] = (
            ("lkn_homeostat_target_rate", "ANALITICO rate set point (NaN when off).",
             lambda: nan(s.target_rate)),
            ("lkn_homeostat_threshold", "Entropy threshold decisions use now.",
             lambda: rate.threshold),
            ("lkn_homeostat_realised_rate", "ANALITICO rate of recent scored decisions.",
             lambda: nan(rate.realised_rate)),
            ("lkn_homeostat_shed_level", "Shed level: 0 none, 1 cheaper, 2 fluido.",
             lambda: float(shedder.current)),
            ("lkn_homeostat_pressure", "Engine load against its set points (1 = saturated).",
             shedder.pressure),
            ("lkn_homeostat_ttft_set_point_seconds", "Time to first token set point.",
             lambda: s.ttft_set_point),
            ("lkn_homeostat_queue_set_point", "Engine waiting-queue set point.",
             lambda: s.queue_set_point),
        )
        known = _GAUGES.setdefault(registry, {})
        for name, doc, read in gauges:
            gauge = known.get(name)
            if gauge is None:
                gauge = known[name] = Gauge(name, doc, registry=registry)
            gauge.set_function(read)
