"""Sheds care when the engines saturate, and restores it as load falls.

Pressure is the worst of the busiest engine's waiting queue against its set point and the
recent time to first token (90th percentile over ``ttft_horizon`` seconds) against its set
point. Pressure >= 1 sheds to ``CHEAPER`` (separate probes skipped, the cheapest
intervention); pressure >= 2, or requests in flight at the limit, sheds to ``FLUIDO``.
Shedding goes up at once; it comes down one level at a time, after pressure has stayed
below ``restore`` times that level's entry point for ``dwell`` seconds. Pure: an injected clock, no I/O. Every change of
level is logged once.
"""

from __future__ import annotations

import bisect
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lkn.config import HomeostatSettings
from lkn.decision.calibrate import quantile_of_sorted

log = logging.getLogger("lkn.homeostat")

#: Times to first token kept for the 90th percentile (the newest within the horizon).
TTFT_WINDOW = 4096


class Shed(enum.IntEnum):
    NONE = 0
    #: Separate probes are skipped (the rules decide) and interventions are the cheapest.
    CHEAPER = 1
    #: Every request is FLUIDO (care a client names included; sampling alone stays).
    FLUIDO = 2


@dataclass(frozen=True)
class Load:
    in_flight: int = 0
    #: The gateway's own concurrency limit (used when no in-flight limit is set).
    limit: int = 0


class LoadShedder:
    def __init__(self, settings: HomeostatSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        #: (arrival, seconds) in arrival order, and the same seconds kept sorted, so the
        #: percentile read on every decision is an index, not a sort of the whole window.
        self._ttfts: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []
        self.queue: float | None = None
        self._source: Callable[[], Load] = Load
        self.current = Shed.NONE
        self._calm_since: float | None = None
        self.changes = 0

    def watch(self, source: Callable[[], Load]) -> None:
        """Where the gateway's in-flight count and limit are read from."""
        self._source = source

    def observe_ttft(self, seconds: float) -> None:
        if len(self._ttfts) >= TTFT_WINDOW:
            self._drop_oldest()
        self._ttfts.append((self._clock(), seconds))
        bisect.insort(self._sorted, seconds)

    def _drop_oldest(self) -> None:
        _, seconds = self._ttfts.popleft()
        del self._sorted[bisect.bisect_left(self._sorted, seconds)]

    def observe_queue(self, waiting: float | None) -> None:
        """The busiest engine's waiting queue, as its load endpoint reports it."""
        self.queue = waiting

    def load(self) -> Load:
        return self._source()

    def limit(self, load: Load) -> int:
        return self.settings.in_flight_limit or load.limit

    def ttft_p90(self) -> float | None:
        """The 90th percentile (linearly interpolated) of the times to first token seen
        within the horizon; None with fewer than three."""
        horizon = self._clock() - self.settings.ttft_horizon
        while self._ttfts and self._ttfts[0][0] < horizon:
            self._drop_oldest()
        if len(self._sorted) < 3:
            return None
        return quantile_of_sorted(self._sorted, 0.9)

    def pressure(self) -> float:
        """Load against its set points: 1.0 is saturation."""
        s = self.settings
        worst = 0.0
        if self.queue is not None and s.queue_set_point > 0:
            worst = self.queue / s.queue_set_point
        ttft = self.ttft_p90()
        if ttft is not None and s.ttft_set_point > 0:
            worst = max(worst, ttft / s.ttft_set_point)
        return worst

    def level(self) -> Shed:
        """The shed level now (re-evaluated on every call)."""
        if not self.settings.shed:
            return Shed.NONE
        pressure, load = self.pressure(), self.load()
        limit = self.limit(load)
        at_limit = limit > 0 and load.in_flight >= limit
        if at_limit or pressure >= 2.0:
            wanted = Shed.FLUIDO
        elif pressure >= 1.0:
            wanted = Shed.CHEAPER
        else:
            wanted = Shed.NONE
        now = self._clock()
        if wanted > self.current:
            self._set(wanted, pressure, load)
            self._calm_since = None
        elif self.current > Shed.NONE:
            entry = 2.0 if self.current is Shed.FLUIDO else 1.0
            calm = not at_limit and pressure < entry * self.settings.restore
            if not calm:
                self._calm_since = None
            elif self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self.settings.dwell:
                self._set(Shed(self.current - 1), pressure, load)
                self._calm_since = now
        return self.current

    def _set(self, level: Shed, pressure: float, load: Load) -> None:
        ttft = self.ttft_p90()
        log.warning(
            "homeostat shed %s -> %s pressure=%.2f in_flight=%d limit=%d queue=%s ttft_p90=%s",
            self.current.name, level.name, pressure, load.in_flight, self.limit(load),
            "-" if self.queue is None else f"{self.queue:g}",
            "-" if ttft is None else f"{ttft:.3f}",
        )
        self.current = level
        self.changes += 1
