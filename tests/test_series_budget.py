"""The README's series budget, pinned: the formula and what a saturated registry holds."""

from __future__ import annotations

import pytest

from benchmarks.series import measure
from exporter.catalog import DURATION_BUCKETS
from exporter.diagnosis import FEEDBACK_TYPES
from exporter.domains import PROVIDER_DOMAINS
from exporter.errors import CloseReason, KeyLookup, Outcome
from exporter.events import Kind
from exporter.mail.smtp import CODE_CLASSES, STATES, STATUS_CLASSES, STATUS_SUBJECTS
from exporter.metrics import BOUNCE_VERDICTS, REQUEST_KINDS, VERDICTS


def budget_formula(domains: int) -> tuple[int, int]:
    """(series at start, worst case) for ``domains`` domain label values including "other"."""
    requests = len(REQUEST_KINDS) * len(Outcome)
    durations = len(REQUEST_KINDS) * (len(DURATION_BUCKETS) + 3)  # +Inf, _sum, _count
    # last_event; overflow; build_info; auth_mode; key lookups; dedup entries and unavailable;
    # connections open and closed
    fixed = requests + durations + len(Kind) + 1 + 1 + 1 + len(KeyLookup) + 2 + 1 + len(CloseReason)
    status_at_start = len(STATUS_CLASSES) * len(STATUS_SUBJECTS) + 1
    status_worst = len(STATUS_CLASSES) * (len(STATUS_SUBJECTS) + 1) + 1  # + "other" subject
    # failures, reasons, complaints, deliveries, opens and clicks, per domain label value
    per_domain = len(STATES) * len(CODE_CLASSES) + len(VERDICTS) + len(FEEDBACK_TYPES) + 3
    providers = len(PROVIDER_DOMAINS) + 1
    unknown_complaints = len(FEEDBACK_TYPES)
    return (
        fixed + status_at_start + per_domain * providers + len(BOUNCE_VERDICTS),
        fixed + status_worst + (per_domain + len(BOUNCE_VERDICTS)) * domains + unknown_complaints,
    )


@pytest.mark.parametrize("limit", [0, 5, 100])
def test_series_at_start_and_worst_case_follow_the_documented_formula(limit: int) -> None:
    budget = measure(limit)
    at_start, worst = budget_formula(len(PROVIDER_DOMAINS) + limit + 1)
    assert (budget.at_start, budget.worst_case) == (at_start, worst)


def test_default_budget_is_what_the_readme_says() -> None:
    budget = measure(100)
    assert (budget.at_start, budget.worst_case) == (3280, 16457)
