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
from exporter.classifier import REASONS, bounce_type_of
from exporter.diagnosis import FEEDBACK_TYPES, Diagnosis
from exporter.domains import OTHER, PROVIDER_DOMAINS, DomainLabels, domain_of
from exporter.errors import Outcome
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

#: Every (reason, bounce_type) pair the hard/soft rule can give: most reasons are only ever
#: soft, address reasons only hard, and notaccept either, depending on the code.
VERDICTS: Final = tuple(
    sorted({(r, bounce_type_of(r, code, "")) for code in ("450", "550") for r in REASONS})
)
#: The (kind, reason, bounce_type) triples a bounce message can be counted under.
BOUNCE_VERDICTS: Final = (
    *(("dsn", reason, bounce_type) for reason, bounce_type in VERDICTS),
    ("autoreply", "vacation", "soft"),
    ("feedback", "feedback", "soft"),
    ("unrecognized", "undefined", "soft"),
)
#: The domain label of a complaint whose report names no recipient.
UNKNOWN_DOMAIN: Final = "unknown"

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
        self.failure_reasons = Counter(
            "smtpeter_failure_reasons",
            "Failed deliveries by bounce reason (Sisimai's vocabulary), hard or soft, and "
            "recipient domain.",
            ["reason", "bounce_type", "domain"],
            registry=registry,
        )
        self.bounces = Counter(
            "smtpeter_bounces",
            "Recipients named by bounce messages from the bounces webhook, by message kind "
            "(dsn, autoreply, feedback, unrecognized), reason, hard or soft, and domain.",
            ["kind", "reason", "bounce_type", "domain"],
            registry=registry,
        )
        self.complaints = Counter(
            "smtpeter_complaints",
            "Spam complaints (ARF reports from the abuses webhook), by feedback type and the "
            "complaining recipient's domain.",
            ["feedback_type", "domain"],
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
            for reason, bounce_type in VERDICTS:
                self.failure_reasons.labels(reason, bounce_type, domain)
            for feedback_type in FEEDBACK_TYPES:
                self.complaints.labels(feedback_type, domain)
            self.deliveries.labels(domain)
            self.opens.labels(domain)
            self.clicks.labels(domain)
        # Bounce messages are the second view of failures already counted by reason per
        # domain above, so their series start at 0 for "other" only (see the series budget).
        for kind, reason, bounce_type in BOUNCE_VERDICTS:
            self.bounces.labels(kind, reason, bounce_type, OTHER)
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

    def count_event(self, event: Event, diagnosis: Diagnosis, received_at: float) -> None:
        """Count one accepted event (its request is counted by :meth:`count_request`)."""
        match event:
            case FailureEvent():
                domain = self.domain_label(event.domain)
                self.failures.labels(event.state, code_class(event.code), domain).inc()
                status = parse_enhanced_status(event.extended)
                if status is None:
                    self.failure_status.labels(NO_STATUS, NO_STATUS).inc()
                else:
                    self.failure_status.labels(status.klass, status.subject_label).inc()
                if diagnosis.verdict is not None:
                    verdict = diagnosis.verdict
                    self.failure_reasons.labels(verdict.reason, verdict.bounce_type, domain).inc()
            case DeliveryEvent():
                self.deliveries.labels(self.domain_label(event.domain)).inc()
            case OpenEvent():
                self.opens.labels(self.domain_label(event.domain)).inc()
            case ClickEvent():
                self.clicks.labels(self.domain_label(event.domain)).inc()
            case BounceEvent():
                self._count_bounce(event, diagnosis)
            case AbuseEvent():
                self._count_complaint(diagnosis)
        self.last_event.labels(event.kind.value).set(received_at)

    def _count_bounce(self, event: BounceEvent, diagnosis: Diagnosis) -> None:
        report = diagnosis.report
        if report is None or not report.facts:
            kind = report.kind if report is not None else "unrecognized"
            self.bounces.labels(kind, "undefined", "soft", self.domain_label(event.domain)).inc()
            return
        for fact in report.facts:
            domain = self.domain_label(domain_of(fact.recipient) or event.domain)
            self.bounces.labels(report.kind, fact.reason, fact.bounce_type, domain).inc()

    def _count_complaint(self, diagnosis: Diagnosis) -> None:
        report = diagnosis.report
        found = domain_of(report.facts[0].recipient) if report and report.facts else None
        domain = self.domain_label(found) if found is not None else UNKNOWN_DOMAIN
        self.complaints.labels(diagnosis.feedback_type, domain).inc()

    def count_request(self, kind: str, outcome: Outcome, seconds: float) -> None:
        """Count one webhook request, whatever became of it."""
        self.requests.labels(kind, outcome.value).inc()
        self.duration.labels(kind).observe(seconds)
