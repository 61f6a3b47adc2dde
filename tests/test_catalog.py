"""The declared metrics are exactly what the service exposes, and follow Prometheus' naming."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from benchmarks.ingest_server import fill_to_cap
from benchmarks.series import measure
from exporter.catalog import METRICS, Label, MetricType
from exporter.errors import Outcome
from exporter.metrics import Metrics


def _exposed() -> dict[str, tuple[str, str, frozenset[str]]]:
    """What a fresh registry exposes of ours: name -> (type, help, label names)."""
    registry = CollectorRegistry()
    Metrics(registry, domain_limit=1)
    exposed = {}
    for family in registry.collect():
        if family.name.startswith("smtpeter_"):
            labels = {name for sample in family.samples for name in sample.labels} - {"le"}
            exposed[family.name] = (family.type, family.documentation, frozenset(labels))
    return exposed


def test_service_exposes_exactly_the_declared_metrics_with_their_labels() -> None:
    declared = {spec.name: (spec.type.value, spec.help, frozenset(spec.labels)) for spec in METRICS}
    assert _exposed() == declared


def test_declared_names_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in METRICS]
    assert len(set(names)) == len(names)
    for spec in METRICS:
        assert re.fullmatch(r"smtpeter_[a-z_]+", spec.name), spec.name
        # prometheus-client adds _total itself; a declared _total would expose _total_total.
        assert not spec.name.endswith("_total"), spec.name
        assert len(set(spec.labels)) == len(spec.labels), spec.name
        assert spec.help.endswith("."), spec.name
        if spec.type is MetricType.HISTOGRAM:
            assert spec.buckets == tuple(sorted(spec.buckets)), spec.name
            assert spec.name.endswith("_seconds"), "histograms here time things, in seconds"
        else:
            assert not spec.buckets, spec.name


def test_series_names_are_what_queries_must_use() -> None:
    by_name = {spec.name: spec for spec in METRICS}
    assert by_name["smtpeter_failures"].series == "smtpeter_failures_total"
    assert by_name["smtpeter_build_info"].series == "smtpeter_build_info"
    duration = by_name["smtpeter_webhook_request_duration_seconds"]
    assert duration.suffixed("bucket") == "smtpeter_webhook_request_duration_seconds_bucket"


def test_every_recipient_counter_carries_provider_beside_domain() -> None:
    for spec in METRICS:
        assert (Label.DOMAIN in spec.labels) == (Label.PROVIDER in spec.labels), spec.name


@pytest.mark.parametrize(
    "accept",
    [
        "",  # the text format, version 0.0.4
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
    ],
)
def test_the_exposition_is_prometheus_clients_byte_for_byte_at_the_series_cap(
    accept: str,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, domain_limit=100)
    fill_to_cap(metrics, 100)
    metrics.count_request("failure", Outcome.ACCEPTED, 2.0)  # past the top bucket
    metrics.domain_overflow.inc(3)
    encoder, content_type = choose_encoder(accept)

    def ours(exposition: bytes) -> list[str]:
        # The process and garbage collector figures change between two renders.
        lines = exposition.decode().splitlines()
        return [line for line in lines if "process_" not in line and "python_gc_" not in line]

    served = metrics.exposition.render(encoder, content_type)
    assert ours(served) == ours(encoder(registry))
    assert sum(line.startswith("smtpeter_") for line in ours(served)) == measure().worst_case
