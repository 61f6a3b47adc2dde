"""The exporter's collectors, built from the declarations in ``exporter.catalog``.

Label values known at start (states x code classes per provider domain, status classes and
subjects, kinds x outcomes) are created at 0 so ``increase()`` and ``absent()`` based alerts
work from the first scrape. The ``domain`` label is bounded by :class:`DomainLabels`, and
``provider`` follows from it.
"""

from __future__ import annotations

import platform
from typing import Final, assert_never

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import disable_created_metrics as _disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

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
from exporter.mail import BounceType, Reason, bounce_type_of
from exporter.mail.smtp import (
    CODE_CLASSES,
    NO_STATUS,
    STATES,
    STATUS_CLASSES,
    STATUS_SUBJECTS,
    code_class,
    parse_enhanced_status,
)
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


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    assert spec.type is MetricType.COUNTER, spec.name
    return Counter(spec.name, spec.help, spec.labels, registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.type is MetricType.GAUGE, spec.name
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    assert spec.type is MetricType.HISTOGRAM, spec.name
    return Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=registry)


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
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        self.failures = _counter(catalog.FAILURES, registry)
        self.failure_status = _counter(catalog.FAILURE_STATUS, registry)
        self.failure_reasons = _counter(catalog.FAILURE_REASONS, registry)
        self.bounces = _counter(catalog.BOUNCES, registry)
        self.complaints = _counter(catalog.COMPLAINTS, registry)
        self.deliveries = _counter(catalog.DELIVERIES, registry)
        self.opens = _counter(catalog.OPENS, registry)
        self.clicks = _counter(catalog.CLICKS, registry)
        self.requests = _counter(catalog.REQUESTS, registry)
        self.duration = _histogram(catalog.REQUEST_DURATION, registry)
        self.last_event = _gauge(catalog.LAST_EVENT, registry)
        self.domain_overflow = _counter(catalog.DOMAIN_OVERFLOW, registry)
        self.auth_mode = _gauge(catalog.AUTH_MODE, registry)
        self.key_lookups = _counter(catalog.KEY_LOOKUPS, registry)
        self.dedup_entries = _gauge(catalog.DEDUP_ENTRIES, registry)
        self.dedup_unavailable = _counter(catalog.DEDUP_UNAVAILABLE, registry)
        self.connections = _gauge(catalog.CONNECTIONS, registry)
        self.connections_closed = _counter(catalog.CONNECTIONS_CLOSED, registry)
        self.build_info = _gauge(catalog.BUILD_INFO, registry)
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
        for kind in Kind:
            self.last_event.labels(kind.value)
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
                recipient = self.recipient_labels(event.domain)
                self.failures.labels(event.state, code_class(event.code), *recipient).inc()
                status = parse_enhanced_status(event.extended)
                if status is None:
                    self.failure_status.labels(NO_STATUS, NO_STATUS).inc()
                else:
                    self.failure_status.labels(status.klass, status.subject_label).inc()
                if diagnosis.verdict is not None:
                    verdict = diagnosis.verdict
                    self.failure_reasons.labels(
                        verdict.reason, verdict.bounce_type, *recipient
                    ).inc()
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
        self.last_event.labels(event.kind.value).set(received_at)

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
        self.requests.labels(kind, outcome.value).inc()
        self.duration.labels(kind).observe(seconds)
