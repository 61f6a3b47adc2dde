"""Series budget: how many series /metrics holds at start and at worst.

``python -m benchmarks.series [DOMAIN_LIMIT]`` drives every label value the exporter can
produce (every state, code class, status class and subject, kind, outcome, and more
recipient domains than the cap) through the public recording API of a fresh registry, and
counts the samples exposed. These are the figures the README's series budget quotes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, replace

from prometheus_client import CollectorRegistry

from exporter.domains import PROVIDER_DOMAINS
from exporter.errors import Outcome
from exporter.events import ClickEvent, DeliveryEvent, Event, FailureEvent, OpenEvent
from exporter.metrics import REQUEST_KINDS, Metrics
from exporter.smtp import STATES, STATUS_CLASSES

CODES = ("250", "450", "550", "")
STATUS_SUBJECTS_SEEN = ("0", "1", "2", "3", "4", "5", "6", "7", "9")
_COMMON = tuple(field.name for field in fields(Event))


@dataclass(frozen=True, slots=True)
class SeriesBudget:
    domain_limit: int
    at_start: int
    worst_case: int


def count_series(registry: CollectorRegistry, prefix: str = "smtpeter_") -> int:
    return sum(
        len(metric.samples) for metric in registry.collect() if metric.name.startswith(prefix)
    )


def _events(domains: list[str]) -> list[Event]:
    """One event per label combination: every kind, state and code class for every domain,
    every status class and subject for one."""
    failure = FailureEvent(
        message_id="",
        recipient="x@gmail.com",
        domain="gmail.com",
        occurred_at=None,
        tags=(),
        extra=(),
        truncated=(),
        action="",
        state_raw="",
        state="other",
        code="",
        extended="",
        description="",
    )
    delivery = DeliveryEvent(
        **{name: getattr(failure, name) for name in _COMMON}, code="", extended="", description=""
    )
    opened = OpenEvent(
        **{name: getattr(failure, name) for name in _COMMON}, ip="", useragent="", referer=""
    )
    clicked = ClickEvent(
        **{name: getattr(failure, name) for name in _COMMON},
        ip="",
        useragent="",
        referer="",
        original="",
    )
    events: list[Event] = []
    for domain in domains:
        recipient = f"x@{domain}"
        events.extend(
            replace(failure, recipient=recipient, domain=domain, state=state, code=code)
            for state in STATES
            for code in CODES
        )
        events.extend(
            replace(event, recipient=recipient, domain=domain)
            for event in (delivery, opened, clicked)
        )
    events.extend(
        replace(failure, extended=f"{klass}.{subject}.0")
        for klass in STATUS_CLASSES
        for subject in STATUS_SUBJECTS_SEEN
    )
    return events


def measure(domain_limit: int = 100) -> SeriesBudget:
    registry = CollectorRegistry()
    metrics = Metrics(registry, domain_limit=domain_limit)
    at_start = count_series(registry)
    # Twice the cap of new domains, so the cap and "other" are both reached.
    domains = [*PROVIDER_DOMAINS, *(f"d{i}.example" for i in range(2 * domain_limit + 10))]
    for event in _events(domains):
        metrics.count_event(event, 0.0)
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
    print(report(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100)))
