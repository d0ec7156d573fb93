"""Holds the ANALITICO rate at a set point by moving the threshold with the score's quantile.

The threshold follows the score's ``1 - rate`` quantile over the last ``window`` decisions of
the scored strategies. Requests the rules sent ANALITICO without a score (``hybrid``) count
toward the rate, so the quantile is taken for what is left. Hysteresis: the threshold moves
only when the rate it gives on the window is off the set point by more than ``band``, and
only once that has lasted ``dwell`` seconds, so a burst shorter than the dwell moves
nothing. A slow integral term removes what tracking lags behind when scores drift.
Pure: an injected clock, no I/O. Every change is logged once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from lkn.config import HomeostatSettings
from lkn.decision.calibrate import quantile

log = logging.getLogger("lkn.homeostat")

#: The integral term moves the rate aimed at by at most this much.
MAX_CORRECTION = 0.15


class RateController:
    def __init__(
        self, settings: HomeostatSettings, base_threshold: float, clock: Callable[[], float]
    ) -> None:
        target = settings.target_rate
        if target is not None and not 0.0 <= target <= 1.0:
            raise ValueError("target rate must be in [0, 1]")
        self.settings = settings
        self.target = target
        self.threshold = base_threshold
        self._clock = clock
        #: Scores of recent decisions; None for one the rules sent ANALITICO unscored.
        self._window: deque[float | None] = deque(maxlen=max(1, settings.window))
        #: Realised modes of recent decisions (True = ANALITICO).
        self._realised: deque[bool] = deque(maxlen=max(1, settings.window))
        self._correction = 0.0
        self._deviating_since: float | None = None
        self.changes = 0

    @property
    def window(self) -> int:
        return len(self._window)

    @property
    def realised_rate(self) -> float | None:
        return sum(self._realised) / len(self._realised) if self._realised else None

    def record(self, score: float | None, analitico: bool, comparable: bool = True) -> None:
        """One unshed decision: its score (None when the rules decided without one).

        ``comparable=False``: the score is not on the threshold's scale (a raw score while
        the normaliser's ranks are still cold); it counts toward the realised rate, never
        toward the quantile (a window of two scales holds neither's rate) nor the integral
        term (the threshold did not decide it).
        """
        self._realised.append(analitico)
        if self.target is None or not comparable:
            return
        self._window.append(score)
        if self.settings.integral_gain > 0.0 and len(self._realised) >= self.settings.min_samples:
            error = self.target - (1.0 if analitico else 0.0)
            self._correction += self.settings.integral_gain * error
            self._correction = max(-MAX_CORRECTION, min(MAX_CORRECTION, self._correction))
        self._update(self.target)

    def _update(self, target: float) -> None:
        scores = [s for s in self._window if s is not None]
        if len(scores) < self.settings.min_samples:
            return
        forced = len(self._window) - len(scores)
        wanted = max(0.0, min(1.0, target + self._correction))
        current = (forced + sum(1 for s in scores if s > self.threshold)) / len(self._window)
        now = self._clock()
        if abs(current - wanted) <= self.settings.band:
            self._deviating_since = None
            return
        if self._deviating_since is None:
            self._deviating_since = now
        if now - self._deviating_since < self.settings.dwell:
            return
        self._deviating_since = None
        # Of the scored requests, this share must be ANALITICO for the whole to be `wanted`.
        needed = max(0.0, min(1.0, (wanted * len(self._window) - forced) / len(scores)))
        proposed = min(1.0, max(0.0, quantile(scores, 1.0 - needed)))
        if proposed == self.threshold:
            return
        log.info(
            "homeostat threshold %.4f -> %.4f target_rate=%.3f window_rate=%.3f window=%d",
            self.threshold, proposed, target, current, len(self._window),
        )
        self.threshold = proposed
        self.changes += 1
