"""What an exchange works with: narrow collaborators, built once per gateway."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lkn.config import Settings
from lkn.decision import Decider
from lkn.exchange.admission import Admission
from lkn.exchange.models import Models
from lkn.exchange.report import Report
from lkn.exchange.streams import OpenStreams
from lkn.metrics import Metrics
from lkn.pool import EnginePool


@dataclass
class Core:
    """The pool, the decider, the metrics and the clock, and the gateway-wide state of
    requests (admission slots, open streams, the report of every end)."""

    settings: Settings
    pool: EnginePool
    decider: Decider
    metrics: Metrics
    clock: Callable[[], float] = time.monotonic
    admission: Admission = field(init=False)
    models: Models = field(init=False)
    report: Report = field(init=False)
    streams: OpenStreams = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.admission = Admission(settings.max_concurrency, self.metrics)
        self.models = Models(settings.model_variants)
        self.report = Report(self.metrics, self.clock, settings.log_prompts)
        self.streams = OpenStreams(self.clock)
