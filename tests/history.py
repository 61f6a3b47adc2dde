"""Hours of an exporter's past, as OpenMetrics for ``promtool tsdb create-blocks-from``.

Rules that compare now with the last hours (the failure-rate spike's baseline) need those
hours in Prometheus. Rather than invent series, this runs the service's own parse, diagnose
and record steps on generated traffic, minute after minute of simulated time, and writes
what its registry holds at each step: the same series, labels and values a scrape of a real
exporter would have stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from benchmarks.traffic import DOMAINS, Post, Traffic
from exporter import catalog
from exporter.catalog import Label, MetricSpec, MetricType
from exporter.diagnosis import diagnose
from exporter.domains import OTHER
from exporter.errors import Outcome
from exporter.metrics import Metrics
from exporter.middlewares import KIND_PATHS
from exporter.webhook import parse_event

#: What the rules read; histograms and process metrics are left out.
FAMILIES: tuple[MetricSpec, ...] = (
    catalog.FAILURES,
    catalog.FAILURE_REASONS,
    catalog.BOUNCES,
    catalog.COMPLAINTS,
    catalog.DELIVERIES,
    catalog.OPENS,
    catalog.CLICKS,
    catalog.REQUESTS,
    catalog.LAST_EVENT,
    catalog.DOMAIN_OVERFLOW,
)
_TRAFFIC_DOMAINS = frozenset(domain for domain, _ in DOMAINS) | {OTHER}


def _collectors(metrics: Metrics) -> list[Collector]:
    return [
        metrics.failures,
        metrics.failure_reasons,
        metrics.bounces,
        metrics.complaints,
        metrics.deliveries,
        metrics.opens,
        metrics.clicks,
        metrics.requests,
        metrics.last_event,
        metrics.domain_overflow,
    ]


Labels = tuple[tuple[str, str], ...]


def record(metrics: Metrics, posts: Iterable[Post], at: float) -> None:
    """What the service does with each post: parse, diagnose, count (event and request)."""
    for path, fields in posts:
        kind = KIND_PATHS[path]
        event = parse_event(kind, {name: [value] for name, value in fields.items()})
        metrics.count_event(event, diagnose(event), at)
        metrics.count_request(kind.value, Outcome.ACCEPTED, 0.001)


def openmetrics(
    job: str,
    instance: str,
    start: float,
    end: float,
    *,
    posts_per_minute: int = 100,
    failure_share: float = 0.03,
    recent: float = 1800.0,
) -> str:
    """Simulated history from ``start`` to ``end`` as one OpenMetrics document.

    The last ``recent`` seconds are written a minute apart, as a scrape would; before that,
    ten minutes apart, which is all the hour- and day-long windows need. A series that stays
    at zero (created at 0 by the exporter) is written for the recent part only.
    """
    metrics = Metrics(CollectorRegistry(), domain_limit=100)
    traffic = Traffic(seed=11)
    wanted = {spec.name: spec for spec in FAMILIES}
    samples: dict[tuple[str, str, Labels], list[tuple[float, float]]] = defaultdict(list)
    at, step = start, 600.0
    while at <= end:
        step = 60.0 if at >= end - recent else 600.0
        record(metrics, traffic.mix(int(posts_per_minute * step / 60), failure_share), at)
        for family in (family for c in _collectors(metrics) for family in c.collect()):
            spec = wanted[family.name]
            for sample in family.samples:
                domain = sample.labels.get(Label.DOMAIN, OTHER)
                if sample.name != spec.series or domain not in _TRAFFIC_DOMAINS:
                    continue
                labels = (("instance", instance), ("job", job), *sorted(sample.labels.items()))
                samples[(spec.name, sample.name, labels)].append((at, sample.value))
        at += step
    lines: list[str] = []
    for spec in FAMILIES:
        kind = "counter" if spec.type is MetricType.COUNTER else "gauge"
        lines.append(f"# TYPE {spec.name} {kind}")
        for (name, sample_name, labels), points in samples.items():
            if name != spec.name:
                continue
            keep = (
                points
                if any(value for _, value in points)
                else [point for point in points if point[0] >= end - recent]
            )
            rendered = ",".join(f'{key}="{value}"' for key, value in labels)
            lines.extend(f"{sample_name}{{{rendered}}} {value} {t:.3f}" for t, value in keep)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
