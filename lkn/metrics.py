"""Prometheus metrics of one gateway instance (own registry, so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ENTROPY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))

CONTENT_TYPE = CONTENT_TYPE_LATEST

M = TypeVar("M", Counter, Gauge, Histogram)


@dataclass(frozen=True)
class MetricSpec:
    """One metric a gateway exports: the attribute of :class:`Metrics` that holds it."""

    attribute: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def build(self, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
        if self.kind is Histogram and self.buckets is not None:
            return Histogram(
                self.name, self.help, self.labels, buckets=self.buckets, registry=registry
            )
        return self.kind(self.name, self.help, self.labels, registry=registry)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("requests", Counter, "lkn_requests",
               "Generation requests by front-end, route and outcome.",
               ("frontend", "route", "outcome")),
    MetricSpec("errors", Counter, "lkn_errors", "Errors reported to clients, by error type.",
               ("type",)),
    MetricSpec("ttft", Histogram, "lkn_time_to_first_token_seconds",
               "Time from request arrival to the first chunk.", ("route",), _LATENCY_BUCKETS),
    MetricSpec("duration", Histogram, "lkn_request_duration_seconds", "Whole request duration.",
               ("route",), _LATENCY_BUCKETS),
    MetricSpec("tokens", Counter, "lkn_tokens", "Tokens reported by the engines.", ("kind",)),
    MetricSpec("in_flight", Gauge, "lkn_requests_in_flight", "Generation requests in progress."),
    MetricSpec("retries", Counter, "lkn_engine_retries",
               "Requests retried on another engine before the first byte."),
    MetricSpec("resumes", Counter, "lkn_stream_resumes",
               "Streams whose engine failed after the first byte (LKN_RESUME), by result: "
               "resumed on another engine, failed (none could continue), budget_spent.",
               ("result",)),
    MetricSpec("loops_stopped", Counter, "lkn_loops_stopped",
               "Answers the loop guard ended (LKN_LOOP_GUARD), by model.", ("model",)),
    MetricSpec("engine_failures", Counter, "lkn_engine_failures",
               "Engine failures counted by the breakers.", ("engine",)),
    MetricSpec("breaker_state", Gauge, "lkn_engine_breaker_state",
               "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ("engine",)),
    MetricSpec("engine_ready", Gauge, "lkn_engine_ready",
               "1 if the engine's readiness check passes.", ("engine",)),
    MetricSpec("engine_in_flight", Gauge, "lkn_engine_requests_in_flight",
               "Requests in progress per engine.", ("engine",)),
    MetricSpec("decisions", Counter, "lkn_decisions", "Homeostatic decisions by mode and strategy.",
               ("mode", "strategy", "applied")),
    MetricSpec("interventions", Counter, "lkn_interventions",
               "Decisions by the intervention they chose.", ("intervention", "applied")),
    MetricSpec("entropy", Histogram, "lkn_probe_entropy",
               "Normalised entropy measured by probes (max over tokens).",
               buckets=_ENTROPY_BUCKETS),
    MetricSpec("probe_latency", Histogram, "lkn_probe_latency_seconds", "Entropy probe latency.",
               buckets=_LATENCY_BUCKETS),
    MetricSpec("probe_fallbacks", Counter, "lkn_probe_fallbacks",
               "Probes that failed or timed out (rules were used).", ("reason",)),
)


class Metrics:
    """Every metric of :data:`METRICS`, each under its attribute, in a registry of its own."""

    requests: Counter
    errors: Counter
    ttft: Histogram
    duration: Histogram
    tokens: Counter
    in_flight: Gauge
    retries: Counter
    resumes: Counter
    loops_stopped: Counter
    engine_failures: Counter
    breaker_state: Gauge
    engine_ready: Gauge
    engine_in_flight: Gauge
    decisions: Counter
    interventions: Counter
    entropy: Histogram
    probe_latency: Histogram
    probe_fallbacks: Counter

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Gauge | Histogram] = {}
        for spec in METRICS:
            setattr(self, spec.attribute, spec.build(self.registry))

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, looked up once per label set (it is on the hot path)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return cast(M, found)

    def watch_engine(
        self,
        engine: str,
        breaker_state: Callable[[], float],
        ready: Callable[[], float],
        in_flight: Callable[[], float],
    ) -> None:
        """Export an engine's live state, read at scrape time."""
        self.breaker_state.labels(engine).set_function(breaker_state)
        self.engine_ready.labels(engine).set_function(ready)
        self.engine_in_flight.labels(engine).set_function(in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)
