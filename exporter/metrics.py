"""Every Prometheus metric this service exports, built around an injected registry.

Label values known at start (states x code classes per provider domain, status classes and
subjects, kinds x outcomes) are created at 0 so ``increase()`` and ``absent()`` based alerts
work from the first scrape. The ``domain`` label is bounded by :class:`DomainLabels`.
"""

from __future__ import annotations

import platform
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.domains import OTHER, PROVIDER_DOMAINS, DomainLabels
from exporter.errors import Outcome
from exporter.events import ClickEvent, DeliveryEvent, Event, FailureEvent, Kind, OpenEvent
from exporter.smtp import (
    CODE_CLASSES,
    NO_STATUS,
    STATES,
    STATUS_CLASSES,
    STATUS_SUBJECTS,
    code_class,
    parse_enhanced_status,
)

#: ``kind`` label values of the request metrics: every webhook kind, plus ``unknown`` for a
#: request to ``/webhooks`` whose ``type`` could not be read.
UNKNOWN_KIND: Final = "unknown"
REQUEST_KINDS: Final = (*(kind.value for kind in Kind), UNKNOWN_KIND)

#: Webhook handling takes well under a millisecond; the top buckets catch slow clients.
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """The exporter's metrics on one registry; one instance per application."""

    def __init__(self, registry: CollectorRegistry, *, domain_limit: int) -> None:
        self.registry = registry
        self.domains = DomainLabels(domain_limit)
        # A ``_created`` series per counter child would double the series count for a value
        # Prometheus does not use; this switch is process-wide in prometheus-client.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        # The default process, platform and GC collectors live on the global registry: give
        # ours the same ones.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        self.failures = Counter(
            "smtpeter_failures",
            "Failed deliveries reported by SMTPeter, by SMTP state, reply-code class and "
            "recipient domain.",
            ["state", "code_class", "domain"],
            registry=registry,
        )
        self.failure_status = Counter(
            "smtpeter_failure_status",
            "Failed deliveries by RFC 3463 enhanced status class and subject "
            "(none when SMTPeter sent no enhanced status code).",
            ["class", "subject"],
            registry=registry,
        )
        self.deliveries = Counter(
            "smtpeter_deliveries",
            "Successful deliveries reported by SMTPeter, by recipient domain.",
            ["domain"],
            registry=registry,
        )
        self.opens = Counter(
            "smtpeter_opens",
            "Opens reported by SMTPeter, by recipient domain.",
            ["domain"],
            registry=registry,
        )
        self.clicks = Counter(
            "smtpeter_clicks",
            "Clicks reported by SMTPeter, by recipient domain.",
            ["domain"],
            registry=registry,
        )
        self.requests = Counter(
            "smtpeter_webhook_requests",
            "Webhook requests received, by webhook kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "smtpeter_webhook_request_duration_seconds",
            "Time from a webhook request's arrival to its response, by webhook kind.",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_event = Gauge(
            "smtpeter_last_event_timestamp_seconds",
            "Unix time at which the last accepted event of each kind was received "
            "(0 until the first).",
            ["kind"],
            registry=registry,
        )
        self.domain_overflow = Counter(
            "smtpeter_domain_label_overflow",
            'Events whose recipient domain was counted as domain="other" because the domain '
            "label cap was reached.",
            registry=registry,
        )
        self.build_info = Gauge(
            "smtpeter_build_info",
            "Always 1; the labels tell which smtpeter-exporter build is running.",
            ["version", "python_version"],
            registry=registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._precreate()

    def _precreate(self) -> None:
        for domain in (*PROVIDER_DOMAINS, OTHER):
            for state in STATES:
                for klass in CODE_CLASSES:
                    self.failures.labels(state, klass, domain)
            self.deliveries.labels(domain)
            self.opens.labels(domain)
            self.clicks.labels(domain)
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

    def domain_label(self, domain: str) -> str:
        """The bounded ``domain`` label value, counting the events that overflow the cap."""
        label, overflowed = self.domains.label(domain)
        if overflowed:
            self.domain_overflow.inc()
        return label

    def count_event(self, event: Event, received_at: float) -> None:
        """Count one accepted event (its request is counted by :meth:`count_request`)."""
        domain = self.domain_label(event.domain)
        match event:
            case FailureEvent():
                self.failures.labels(event.state, code_class(event.code), domain).inc()
                status = parse_enhanced_status(event.extended)
                if status is None:
                    self.failure_status.labels(NO_STATUS, NO_STATUS).inc()
                else:
                    self.failure_status.labels(status.klass, status.subject_label).inc()
            case DeliveryEvent():
                self.deliveries.labels(domain).inc()
            case OpenEvent():
                self.opens.labels(domain).inc()
            case ClickEvent():
                self.clicks.labels(domain).inc()
        self.last_event.labels(event.kind.value).set(received_at)

    def count_request(self, kind: str, outcome: Outcome, seconds: float) -> None:
        """Count one webhook request, whatever became of it."""
        self.requests.labels(kind, outcome.value).inc()
        self.duration.labels(kind).observe(seconds)
