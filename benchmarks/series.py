"""Series budget: how many series /metrics holds at start and at worst.

``python -m benchmarks.series [DOMAIN_LIMIT]`` drives every label value the exporter can
produce (every state, code class, status class and subject, reason, bounce kind, feedback
type, kind and outcome, for more recipient domains than the cap) through the public
recording API of a fresh registry, and counts the samples exposed. These are the figures
the README's series budget quotes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

from prometheus_client import CollectorRegistry

from exporter.diagnosis import FEEDBACK_TYPES, NOTHING, Diagnosis
from exporter.domains import PROVIDER_DOMAINS
from exporter.errors import Outcome
from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
)
from exporter.mail import BounceFact, BounceReport, BounceType, Reason, Verdict
from exporter.mail.smtp import STATES, STATUS_CLASSES
from exporter.metrics import (
    BOUNCE_VERDICTS,
    REQUEST_KINDS,
    VERDICTS,
    Metrics,
    disable_created_series,
)

CODES = ("250", "450", "550", "")
STATUS_SUBJECTS_SEEN = ("0", "1", "2", "3", "4", "5", "6", "7", "9")


class _Common(TypedDict):
    message_id: str
    occurred_at: datetime | None
    tags: tuple[str, ...]
    extra: tuple[tuple[str, str], ...]
    truncated: tuple[str, ...]


_COMMON = _Common(message_id="", occurred_at=None, tags=(), extra=(), truncated=())


@dataclass(frozen=True, slots=True)
class SeriesBudget:
    domain_limit: int
    at_start: int
    worst_case: int


def count_series(registry: CollectorRegistry, prefix: str = "smtpeter_") -> int:
    return sum(
        len(metric.samples) for metric in registry.collect() if metric.name.startswith(prefix)
    )


def _fact(recipient: str, reason: Reason, bounce_type: BounceType) -> BounceFact:
    return BounceFact(recipient, "", "", "", "", reason, bounce_type)


def _recorded(domains: list[str]) -> Iterator[tuple[Event, Diagnosis]]:
    """One event per label combination: every kind, state, code class, reason and bounce
    kind for every domain; every status class and subject and feedback type for one."""
    failure = FailureEvent(
        **_COMMON,
        recipient="x@gmail.com",
        domain="gmail.com",
        action="",
        state_raw="",
        state="other",
        code="",
        extended="",
        description="",
    )
    others: tuple[DeliveryEvent | OpenEvent | ClickEvent, ...] = (
        DeliveryEvent(**_COMMON, recipient="", domain="", code="", extended="", description=""),
        OpenEvent(**_COMMON, recipient="", domain="", ip="", useragent="", referer=""),
        ClickEvent(
            **_COMMON, recipient="", domain="", ip="", useragent="", referer="", original=""
        ),
    )
    bounce = BounceEvent(
        **_COMMON,
        recipient="",
        domain="",
        envelope="",
        mailfrom="",
        rcptto="",
        mime=b"",
    )
    abuse = AbuseEvent(**_COMMON, emailfrom="", mime=b"")
    for domain in domains:
        recipient = f"x@{domain}"
        for state in STATES:
            for code in CODES:
                event = replace(failure, recipient=recipient, domain=domain, state=state, code=code)
                yield event, NOTHING
        for reason, bounce_type in VERDICTS:
            event = replace(failure, recipient=recipient, domain=domain)
            yield event, Diagnosis(verdict=Verdict(reason, bounce_type))
        for kind, reason, bounce_type in BOUNCE_VERDICTS:
            report = BounceReport(kind, (_fact(recipient, reason, bounce_type),))
            yield replace(bounce, recipient=recipient, domain=domain), Diagnosis(report=report)
        for feedback_type in FEEDBACK_TYPES:
            report = BounceReport(
                "feedback",
                (_fact(recipient, Reason.FEEDBACK, BounceType.SOFT),),
                feedback_type=feedback_type,
            )
            yield abuse, Diagnosis(report=report)
        for other in others:
            yield replace(other, recipient=recipient, domain=domain), NOTHING
    for feedback_type in FEEDBACK_TYPES:  # reports naming no recipient: domain="unknown"
        yield abuse, Diagnosis(report=BounceReport("feedback", (), feedback_type=feedback_type))
    for klass in STATUS_CLASSES:
        for subject in STATUS_SUBJECTS_SEEN:
            yield replace(failure, extended=f"{klass}.{subject}.0"), NOTHING


def measure(domain_limit: int = 100) -> SeriesBudget:
    registry = CollectorRegistry()
    metrics = Metrics(registry, domain_limit=domain_limit)
    at_start = count_series(registry)
    # Twice the cap of new domains, so the cap and "other" are both reached.
    domains = [*PROVIDER_DOMAINS, *(f"d{i}.example" for i in range(2 * domain_limit + 10))]
    for event, diagnosis in _recorded(domains):
        metrics.count_event(event, diagnosis, 0.0)
    for kind in REQUEST_KINDS:
        for outcome in Outcome:
            metrics.count_request(kind, outcome, 0.001)
    return SeriesBudget(domain_limit, at_start, count_series(registry))


def report(budget: SeriesBudget) -> str:
    return (
        f"series budget (smtpeter_* samples, domain limit {budget.domain_limit}, "
        f"{len(PROVIDER_DOMAINS)} provider domains):\n"
        f"  at start:   {budget.at_start}\n"
        f"  worst case: {budget.worst_case}"
    )


if __name__ == "__main__":
    disable_created_series()
    print(report(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100)))
