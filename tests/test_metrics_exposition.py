"""The metrics a gateway exposes: every name, type, help text, label set and bucket layout as
a scrape sees them, so that a change to how they are declared cannot rename or drop one."""

from __future__ import annotations

from collections import defaultdict
from typing import get_type_hints

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lkn.metrics import METRICS, Metrics

pytestmark = pytest.mark.fast

_LATENCY = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
            "10.0", "30.0", "60.0", "+Inf")
_ENTROPY = tuple(str(round(0.05 * i, 2)) for i in range(1, 21)) + ("+Inf",)

# attribute, metric family, type, help, labels, bucket bounds (histograms)
EXPECTED: tuple[tuple[str, str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("requests", "lkn_requests", "counter",
     "Generation requests by front-end, route and outcome.", ("frontend", "route", "outcome"), ()),
    ("errors", "lkn_errors", "counter", "Errors reported to clients, by error type.", ("type",), ()),
    ("ttft", "lkn_time_to_first_token_seconds", "histogram",
     "Time from request arrival to the first chunk.", ("route",), _LATENCY),
    ("duration", "lkn_request_duration_seconds", "histogram", "Whole request duration.",
     ("route",), _LATENCY),
    ("tokens", "lkn_tokens", "counter", "Tokens reported by the engines.", ("kind",), ()),
    ("in_flight", "lkn_requests_in_flight", "gauge", "Generation requests in progress.", (), ()),
    ("retries", "lkn_engine_retries", "counter",
     "Requests retried on another engine before the first byte.", (), ()),
    ("resumes", "lkn_stream_resumes", "counter",
     "Streams whose engine failed after the first byte (LKN_RESUME), by result: resumed on "
     "another engine, failed (none could continue), budget_spent.", ("result",), ()),
    ("loops_stopped", "lkn_loops_stopped", "counter",
     "Answers the loop guard ended (LKN_LOOP_GUARD), by model.", ("model",), ()),
    ("engine_failures", "lkn_engine_failures", "counter",
     "Engine failures counted by the breakers.", ("engine",), ()),
    ("breaker_state", "lkn_engine_breaker_state", "gauge",
     "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ("engine",), ()),
    ("engine_ready", "lkn_engine_ready", "gauge", "1 if the engine's readiness check passes.",
     ("engine",), ()),
    ("engine_in_flight", "lkn_engine_requests_in_flight", "gauge",
     "Requests in progress per engine.", ("engine",), ()),
    ("decisions", "lkn_decisions", "counter", "Homeostatic decisions by mode and strategy.",
     ("mode", "strategy", "applied"), ()),
    ("interventions", "lkn_interventions", "counter",
     "Decisions by the intervention they chose.", ("intervention", "applied"), ()),
    ("entropy", "lkn_probe_entropy", "histogram",
     "Normalised entropy measured by probes (max over tokens).", (), _ENTROPY),
    ("probe_latency", "lkn_probe_latency_seconds", "histogram", "Entropy probe latency.",
     (), _LATENCY),
    ("probe_fallbacks", "lkn_probe_fallbacks", "counter",
     "Probes that failed or timed out (rules were used).", ("reason",), ()),
)


def scrape(metrics: Metrics) -> dict[str, tuple[str, str, set[str], list[str]]]:
    """family -> (type, help, label names seen, bucket bounds) of a rendered exposition."""
    found: dict[str, tuple[str, str, set[str], list[str]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):
            continue
        labels: set[str] = set()
        bounds: list[str] = []
        for sample in family.samples:
            labels.update(k for k in sample.labels if k != "le")
            if sample.name.endswith("_bucket"):
                bounds.append(sample.labels["le"])
        found[family.name] = (family.type, family.documentation, labels, bounds)
    return found


def test_every_metric_keeps_its_name_type_help_labels_and_buckets() -> None:
    metrics = Metrics()
    for attribute, _, _, _, labels, _ in EXPECTED:
        metric = getattr(metrics, attribute)
        if labels:
            metric.labels(*["x"] * len(labels))
    found = scrape(metrics)
    assert sorted(found) == sorted(family for _, family, *_ in EXPECTED)
    for _, family, kind, help_text, labels, buckets in EXPECTED:
        assert found[family] == (kind, help_text, set(labels), list(buckets)), family


def test_label_order_is_the_declared_one() -> None:
    metrics = Metrics()
    for attribute, family, _, _, labels, _ in EXPECTED:
        if not labels:
            continue
        getattr(metrics, attribute).labels(*labels)
        values: defaultdict[str, str] = defaultdict(str)
        for fam in text_string_to_metric_families(metrics.render().decode()):
            if fam.name == family:
                values.update(fam.samples[0].labels)
        assert [values[name] for name in labels] == list(labels), family


def test_the_table_and_the_attributes_agree() -> None:
    assert get_type_hints(Metrics) == {spec.attribute: spec.kind for spec in METRICS}
    metrics = Metrics()
    for spec in METRICS:
        assert isinstance(getattr(metrics, spec.attribute), spec.kind)
