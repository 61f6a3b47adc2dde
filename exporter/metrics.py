"""The exporter's collectors, built from the declarations in ``exporter.catalog``.

Label values known at start (states x code classes per provider domain, status classes and
subjects, kinds x outcomes) are created at 0 so ``increase()`` and ``absent()`` based alerts
work from the first scrape. The ``domain`` label is bounded by :class:`DomainLabels`, and
``provider`` follows from it.

Counters and the histogram are :mod:`exporter.families`: updated on the event loop without
locks, and written to ``/metrics`` from lines made once per series (:mod:`exporter.exposition`);
gauges are prometheus-client's.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Final, assert_never

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import disable_created_metrics as _disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from exporter import __version__, catalog
from exporter.catalog import MetricSpec, MetricType
from exporter.diagnosis import FEEDBACK_TYPES, Diagnosis
from exporter.domains import (
    NO_RECIPIENT,
    OVERFLOW,
    DomainLabels,
    RecipientLabels,
    domain_of,
)
from exporter.errors import CloseReason, KeyLookup, Outcome
from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    Kind,
    OpenEvent,
)
from exporter.exposition import Exposition
from exporter.families import CounterFamily, HistogramFamily
from exporter.mail import BounceType, Reason, bounce_type_of
from exporter.mail.smtp import CODE_CLASSES, NO_STATUS, STATES, STATUS_CLASSES, STATUS_SUBJECTS
from exporter.settings import AuthMode

#: ``kind`` label values of the request metrics: every webhook kind, plus ``unknown`` for a
#: request to ``/webhooks`` whose ``type`` could not be read.
UNKNOWN_KIND: Final = "unknown"
REQUEST_KINDS: Final = (*(kind.value for kind in Kind), UNKNOWN_KIND)

#: Every (reason, bounce_type) pair the hard/soft rule can give: most reasons are only ever
#: soft, address reasons only hard, and notaccept either, depending on the code.
VERDICTS: Final = tuple(
    sorted({(r, bounce_type_of(r, code, "")) for code in ("450", "550") for r in Reason})
)
#: The (kind, reason, bounce_type) triples a bounce message can be counted under.
BOUNCE_VERDICTS: Final = (
    *(("dsn", reason, bounce_type) for reason, bounce_type in VERDICTS),
    ("autoreply", Reason.VACATION, BounceType.SOFT),
    ("feedback", Reason.FEEDBACK, BounceType.SOFT),
    ("unrecognized", Reason.UNDEFINED, BounceType.SOFT),
)


def disable_created_series() -> None:
    """Drop the ``_created`` series prometheus-client adds per counter child.

    They would double the series count for a value Prometheus does not use. The switch is
    process-wide in prometheus-client, so it is thrown once at process start (by the command
    line, the benchmarks and the test session), never by building a :class:`Metrics`.
    """
    _disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.type is MetricType.GAUGE, spec.name
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


class LastEvent(Collector):
    """``smtpeter_last_event_timestamp_seconds``, read from a plain table at scrape time:
    recording an event writes one float instead of setting a gauge under its lock."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received_at: dict[str, float] = {kind.value: 0.0 for kind in Kind}
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for kind, at in self.received_at.items():
            family.add_metric([kind], at)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        spec = catalog.LAST_EVENT
        return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


class Metrics:
    """The exporter's metrics on one registry; one instance per application."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        domain_limit: int,
        auth_mode: AuthMode = AuthMode.NONE,
        listed_domains: tuple[str, ...] = (),
    ) -> None:
        self.registry = registry
        self.domains = DomainLabels(domain_limit, listed=listed_domains)
        # The default process, platform and GC collectors live on the global registry: give
        # ours the same ones.
        collectors: list[Collector] = [
            ProcessCollector(registry=registry),
            PlatformCollector(registry=registry),
            GCCollector(registry=registry),
        ]
        self.failures = CounterFamily(catalog.FAILURES, registry)
        self.failure_status = CounterFamily(catalog.FAILURE_STATUS, registry)
        self.failure_reasons = CounterFamily(catalog.FAILURE_REASONS, registry)
        self.bounces = CounterFamily(catalog.BOUNCES, registry)
        self.complaints = CounterFamily(catalog.COMPLAINTS, registry)
        self.deliveries = CounterFamily(catalog.DELIVERIES, registry)
        self.opens = CounterFamily(catalog.OPENS, registry)
        self.clicks = CounterFamily(catalog.CLICKS, registry)
        self.requests = CounterFamily(catalog.REQUESTS, registry)
        self.duration = HistogramFamily(catalog.REQUEST_DURATION, registry)
        self.last_event = LastEvent(registry)
        self.domain_overflow = CounterFamily(catalog.DOMAIN_OVERFLOW, registry)
        self.auth_mode = _gauge(catalog.AUTH_MODE, registry)
        self.key_lookups = CounterFamily(catalog.KEY_LOOKUPS, registry)
        self.dedup_entries = _gauge(catalog.DEDUP_ENTRIES, registry)
        self.dedup_unavailable = CounterFamily(catalog.DEDUP_UNAVAILABLE, registry)
        self.connections = _gauge(catalog.CONNECTIONS, registry)
        self.connections_closed = CounterFamily(catalog.CONNECTIONS_CLOSED, registry)
        self.build_info = _gauge(catalog.BUILD_INFO, registry)
        collectors += (
            self.failures,
            self.failure_status,
            self.failure_reasons,
            self.bounces,
            self.complaints,
            self.deliveries,
            self.opens,
            self.clicks,
            self.requests,
            self.duration,
            self.last_event,
            self.domain_overflow,
            self.auth_mode,
            self.key_lookups,
            self.dedup_entries,
            self.dedup_unavailable,
            self.connections,
            self.connections_closed,
            self.build_info,
        )
        #: ``/metrics``: every collector above, in the order registered.
        self.exposition = Exposition(collectors)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.auth_mode.labels(auth_mode.value).set(1)
        self._precreate()

    def _precreate(self) -> None:
        self._precreate_per_recipient()
        # Bounce messages are the second view of failures already counted by reason per
        # domain above, so their series start at 0 for "other" only (see the series budget).
        for kind, reason, bounce_type in BOUNCE_VERDICTS:
            self.bounces.labels(kind, reason, bounce_type, *OVERFLOW)
        for status_class in STATUS_CLASSES:
            for subject in STATUS_SUBJECTS:
                self.failure_status.labels(status_class, subject)
        self.failure_status.labels(NO_STATUS, NO_STATUS)
        for kind in REQUEST_KINDS:
            for outcome in Outcome:
                self.requests.labels(kind, outcome.value)
            self.duration.labels(kind)
        for lookup in KeyLookup:
            self.key_lookups.labels(lookup.value)
        for close_reason in CloseReason:
            self.connections_closed.labels(close_reason.value)

    def _precreate_per_recipient(self) -> None:
        recipients = (
            *(RecipientLabels(domain, provider) for domain, provider in self.domains.fixed.items()),
            OVERFLOW,
        )
        for recipient in recipients:
            for state in STATES:
                for klass in CODE_CLASSES:
                    self.failures.labels(state, klass, *recipient)
            for reason, bounce_type in VERDICTS:
                self.failure_reasons.labels(reason, bounce_type, *recipient)
            for feedback_type in FEEDBACK_TYPES:
                self.complaints.labels(feedback_type, *recipient)
            self.deliveries.labels(*recipient)
            self.opens.labels(*recipient)
            self.clicks.labels(*recipient)

    def recipient_labels(self, domain: str) -> RecipientLabels:
        """The bounded ``domain`` label and its ``provider``, counting overflows of the cap."""
        labels, overflowed = self.domains.label(domain)
        if overflowed:
            self.domain_overflow.inc()
        return labels

    def count_event(self, event: Event, diagnosis: Diagnosis, received_at: float) -> None:
        """Count one accepted event (its request is counted by :meth:`count_request`)."""
        match event:
            case FailureEvent():
                domain, provider = self.recipient_labels(event.domain)
                self.failures.labels(event.state, event.code_class, domain, provider).inc()
                status = event.status
                if status is None:
                    self.failure_status.labels(NO_STATUS, NO_STATUS).inc()
                else:
                    self.failure_status.labels(status.klass, status.subject_label).inc()
                verdict = diagnosis.verdict
                if verdict is not None:
                    reason, bounce_type = verdict.reason, verdict.bounce_type
                    self.failure_reasons.labels(reason, bounce_type, domain, provider).inc()
            case DeliveryEvent():
                self.deliveries.labels(*self.recipient_labels(event.domain)).inc()
            case OpenEvent():
                self.opens.labels(*self.recipient_labels(event.domain)).inc()
            case ClickEvent():
                self.clicks.labels(*self.recipient_labels(event.domain)).inc()
            case BounceEvent():
                self._count_bounce(event, diagnosis)
            case AbuseEvent():
                self._count_complaint(diagnosis)
            case _:
                assert_never(event)
        self.last_event.received_at[event.kind] = received_at

    def _count_bounce(self, event: BounceEvent, diagnosis: Diagnosis) -> None:
        report = diagnosis.report
        if report is None or not report.facts:
            kind = report.kind if report is not None else "unrecognized"
            recipient = self.recipient_labels(event.domain)
            self.bounces.labels(kind, Reason.UNDEFINED, BounceType.SOFT, *recipient).inc()
            return
        for fact in report.facts:
            recipient = self.recipient_labels(domain_of(fact.recipient) or event.domain)
            self.bounces.labels(report.kind, fact.reason, fact.bounce_type, *recipient).inc()

    def _count_complaint(self, diagnosis: Diagnosis) -> None:
        report = diagnosis.report
        found = domain_of(report.facts[0].recipient) if report and report.facts else None
        recipient = self.recipient_labels(found) if found is not None else NO_RECIPIENT
        self.complaints.labels(diagnosis.feedback_type, *recipient).inc()

    def count_request(self, kind: str, outcome: Outcome, seconds: float) -> None:
        """Count one webhook request, whatever became of it."""
        self.requests.labels(kind, outcome).inc()
        self.duration.labels(kind).observe(seconds)
