"""The deduplicate step: a retried event is counted once."""

from __future__ import annotations

from exporter.metrics import Metrics
from exporter.pipeline import Deduplicator, NoDeduplication
from exporter.settings import Settings


def build_deduplicator(settings: Settings, metrics: Metrics) -> Deduplicator:
    """The duplicate store the settings name."""
    return NoDeduplication()
