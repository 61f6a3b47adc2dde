"""Every metric this service exports, declared once as data.

The service builds its collectors from these declarations (``exporter.metrics``), the rule
and dashboard generators (``monitoring``) write their queries from them, and the tests read
them, so a renamed metric or label breaks the build instead of silently emptying a panel or
an alert. Label names are a closed vocabulary (:class:`Label`): a typo fails mypy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class MetricType(StrEnum):
    """Prometheus metric types, as the exposition's ``# TYPE`` line spells them."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Label(StrEnum):
    """Every label name the service's own metrics use."""

    STATE = "state"
    CODE_CLASS = "code_class"
    DOMAIN = "domain"
    PROVIDER = "provider"
    STATUS_CLASS = "class"
    STATUS_SUBJECT = "subject"
    REASON = "reason"
    BOUNCE_TYPE = "bounce_type"
    FEEDBACK_TYPE = "feedback_type"
    #: The webhook kind on request metrics; the message kind on ``smtpeter_bounces_total``.
    KIND = "kind"
    OUTCOME = "outcome"
    VERSION = "version"
    PYTHON_VERSION = "python_version"
    MODE = "mode"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name (without ``_total``), type, help text and label names."""

    name: str
    type: MetricType
    help: str
    labels: tuple[Label, ...] = ()
    #: Histogram bucket upper bounds, in the metric's unit.
    buckets: tuple[float, ...] = ()

    @property
    def series(self) -> str:
        """The name a query uses: counters are exposed with ``_total``."""
        return f"{self.name}_total" if self.type is MetricType.COUNTER else self.name

    def suffixed(self, suffix: str) -> str:
        """A histogram's ``_bucket``, ``_sum`` or ``_count`` series."""
        if self.type is not MetricType.HISTOGRAM:
            raise ValueError(f"{self.name} is a {self.type}, not a histogram")
        return f"{self.name}_{suffix}"


#: The recipient labels every per-recipient counter carries: the bounded domain, and the
#: mailbox provider that domain belongs to (a function of it, so it adds no series).
_RECIPIENT: Final = (Label.DOMAIN, Label.PROVIDER)

#: Webhook handling takes well under a millisecond; the top buckets catch slow clients.
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

FAILURES: Final = MetricSpec(
    "smtpeter_failures",
    MetricType.COUNTER,
    "Failed deliveries reported by SMTPeter, by SMTP state, reply-code class, recipient "
    "domain and mailbox provider.",
    (Label.STATE, Label.CODE_CLASS, *_RECIPIENT),
)
FAILURE_STATUS: Final = MetricSpec(
    "smtpeter_failure_status",
    MetricType.COUNTER,
    "Failed deliveries by RFC 3463 enhanced status class and subject "
    "(none when SMTPeter sent no enhanced status code).",
    (Label.STATUS_CLASS, Label.STATUS_SUBJECT),
)
FAILURE_REASONS: Final = MetricSpec(
    "smtpeter_failure_reasons",
    MetricType.COUNTER,
    "Failed deliveries by bounce reason (Sisimai's vocabulary), hard or soft, recipient "
    "domain and mailbox provider.",
    (Label.REASON, Label.BOUNCE_TYPE, *_RECIPIENT),
)
BOUNCES: Final = MetricSpec(
    "smtpeter_bounces",
    MetricType.COUNTER,
    "Recipients named by bounce messages from the bounces webhook, by message kind "
    "(dsn, autoreply, feedback, unrecognized), reason, hard or soft, domain and provider.",
    (Label.KIND, Label.REASON, Label.BOUNCE_TYPE, *_RECIPIENT),
)
COMPLAINTS: Final = MetricSpec(
    "smtpeter_complaints",
    MetricType.COUNTER,
    "Spam complaints (ARF reports from the abuses webhook), by feedback type and the "
    "complaining recipient's domain and provider.",
    (Label.FEEDBACK_TYPE, *_RECIPIENT),
)
DELIVERIES: Final = MetricSpec(
    "smtpeter_deliveries",
    MetricType.COUNTER,
    "Successful deliveries reported by SMTPeter, by recipient domain and provider.",
    _RECIPIENT,
)
OPENS: Final = MetricSpec(
    "smtpeter_opens",
    MetricType.COUNTER,
    "Opens reported by SMTPeter, by recipient domain and provider.",
    _RECIPIENT,
)
CLICKS: Final = MetricSpec(
    "smtpeter_clicks",
    MetricType.COUNTER,
    "Clicks reported by SMTPeter, by recipient domain and provider.",
    _RECIPIENT,
)
REQUESTS: Final = MetricSpec(
    "smtpeter_webhook_requests",
    MetricType.COUNTER,
    "Webhook requests received, by webhook kind and outcome.",
    (Label.KIND, Label.OUTCOME),
)
REQUEST_DURATION: Final = MetricSpec(
    "smtpeter_webhook_request_duration_seconds",
    MetricType.HISTOGRAM,
    "Time from a webhook request's arrival to its response, by webhook kind.",
    (Label.KIND,),
    DURATION_BUCKETS,
)
LAST_EVENT: Final = MetricSpec(
    "smtpeter_last_event_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time at which the last accepted event of each kind was received (0 until the first).",
    (Label.KIND,),
)
DOMAIN_OVERFLOW: Final = MetricSpec(
    "smtpeter_domain_label_overflow",
    MetricType.COUNTER,
    'Events whose recipient domain was counted as domain="other" because the domain label '
    "cap was reached.",
)
BUILD_INFO: Final = MetricSpec(
    "smtpeter_build_info",
    MetricType.GAUGE,
    "Always 1; the labels tell which smtpeter-exporter build is running.",
    (Label.VERSION, Label.PYTHON_VERSION),
)

AUTH_MODE: Final = MetricSpec(
    "smtpeter_auth_mode",
    MetricType.GAUGE,
    "Always 1; the mode label tells how webhook requests are authenticated (signature, "
    "token or none).",
    (Label.MODE,),
)
KEY_LOOKUPS: Final = MetricSpec(
    "smtpeter_signing_key_lookups",
    MetricType.COUNTER,
    "DNS lookups of SMTPeter's signing keys, by outcome (found, not_found, error).",
    (Label.OUTCOME,),
)
DEDUP_ENTRIES: Final = MetricSpec(
    "smtpeter_dedup_entries",
    MetricType.GAUGE,
    "Events remembered in memory for duplicate detection.",
)
DEDUP_UNAVAILABLE: Final = MetricSpec(
    "smtpeter_dedup_unavailable",
    MetricType.COUNTER,
    "Events accepted without a duplicate check because the duplicate store (Redis) could "
    "not be reached.",
)
CONNECTIONS: Final = MetricSpec(
    "smtpeter_http_connections",
    MetricType.GAUGE,
    "Client connections open now, on the webhook listener.",
)
CONNECTIONS_CLOSED: Final = MetricSpec(
    "smtpeter_http_connections_closed",
    MetricType.COUNTER,
    "Client connections the server closed itself, by reason (header_timeout, "
    "idle_timeout, evicted, bad_request).",
    (Label.REASON,),
)

#: Every metric of the service, in the order the README's table lists them.
METRICS: Final[tuple[MetricSpec, ...]] = (
    FAILURES,
    FAILURE_STATUS,
    FAILURE_REASONS,
    BOUNCES,
    COMPLAINTS,
    DELIVERIES,
    OPENS,
    CLICKS,
    REQUESTS,
    REQUEST_DURATION,
    LAST_EVENT,
    DOMAIN_OVERFLOW,
    AUTH_MODE,
    KEY_LOOKUPS,
    DEDUP_ENTRIES,
    DEDUP_UNAVAILABLE,
    CONNECTIONS,
    CONNECTIONS_CLOSED,
    BUILD_INFO,
)
