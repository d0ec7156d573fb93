"""Prometheus metrics of one gateway instance (own registry, so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ENTROPY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))

CONTENT_TYPE = CONTENT_TYPE_LATEST

M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Gauge | Histogram] = {}
        r = self.registry
        self.requests = Counter(
            "lkn_requests", "Generation requests by front-end, route and outcome.",
            ("frontend", "route", "outcome"), registry=r,
        )
        self.errors = Counter(
            "lkn_errors", "Errors reported to clients, by error type.", ("type",), registry=r
        )
        self.ttft = Histogram(
            "lkn_time_to_first_token_seconds", "Time from request arrival to the first chunk.",
            ("route",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.duration = Histogram(
            "lkn_request_duration_seconds", "Whole request duration.",
            ("route",), buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "lkn_tokens", "Tokens reported by the engines.", ("kind",), registry=r
        )
        self.in_flight = Gauge(
            "lkn_requests_in_flight", "Generation requests in progress.", registry=r
        )
        self.retries = Counter(
            "lkn_engine_retries", "Requests retried on another engine before the first byte.",
            registry=r,
        )
        self.resumes = Counter(
            "lkn_stream_resumes",
            "Streams whose engine failed after the first byte (LKN_RESUME), by result: "
            "resumed on another engine, failed (none could continue), budget_spent.",
            ("result",), registry=r,
        )
        self.loops_stopped = Counter(
            "lkn_loops_stopped", "Answers the loop guard ended (LKN_LOOP_GUARD), by model.",
            ("model",), registry=r,
        )
        self.engine_failures = Counter(
            "lkn_engine_failures", "Engine failures counted by the breakers.", ("engine",),
            registry=r,
        )
        self.breaker_state = Gauge(
            "lkn_engine_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ("engine",), registry=r,
        )
        self.engine_ready = Gauge(
            "lkn_engine_ready", "1 if the engine's readiness check passes.", ("engine",),
            registry=r,
        )
        self.engine_in_flight = Gauge(
            "lkn_engine_requests_in_flight", "Requests in progress per engine.", ("engine",),
            registry=r,
        )
        self.decisions = Counter(
            "lkn_decisions", "Homeostatic decisions by mode and strategy.",
            ("mode", "strategy", "applied"), registry=r,
        )
        self.interventions = Counter(
            "lkn_interventions", "Decisions by the intervention they chose.",
            ("intervention", "applied"), registry=r,
        )
        self.entropy = Histogram(
            "lkn_probe_entropy", "Normalised entropy measured by probes (max over tokens).",
            buckets=_ENTROPY_BUCKETS, registry=r,
        )
        self.probe_latency = Histogram(
            "lkn_probe_latency_seconds", "Entropy probe latency.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.probe_fallbacks = Counter(
            "lkn_probe_fallbacks", "Probes that failed or timed out (rules were used).",
            ("reason",), registry=r,
        )

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
