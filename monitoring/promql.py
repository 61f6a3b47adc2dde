"""The few PromQL building blocks the rules and dashboards share.

Metric names come from ``exporter.catalog`` and label names from its :class:`Label`, so a
renamed metric or label changes every query that uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.catalog import Label, MetricSpec


def matchers(*parts: str) -> str:
    """``{a, b}`` from the non-empty matcher strings given."""
    return "{" + ", ".join(part for part in parts if part) + "}"


def eq(label: Label | str, value: str) -> str:
    return f'{label}="{value}"'


def ne(label: Label | str, value: str) -> str:
    return f'{label}!="{value}"'


def regex(label: Label | str, values: Iterable[str]) -> str:
    """``label=~"a|b"``; the values are plain names, never patterns."""
    return f'{label}=~"{"|".join(values)}"'


def not_regex(label: Label | str, values: Iterable[str]) -> str:
    return f'{label}!~"{"|".join(values)}"'


def series(spec: MetricSpec, *parts: str) -> str:
    """A metric's series with label matchers (``smtpeter_failures_total{job="x"}``)."""
    return spec.series + matchers(*parts)


def by(*labels: Label | str) -> str:
    """``by (job, provider)``."""
    return f"by ({', '.join(labels)})"
