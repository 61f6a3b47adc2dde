"""The record step: an accepted event and its diagnosis become counters and one log line.

Nothing here can reject: by the time an event arrives it has been validated, and what is
recorded is exactly what the response will acknowledge.
"""

from __future__ import annotations

import structlog

from exporter.diagnosis import Diagnosis
from exporter.events import Event
from exporter.logs import RecipientMode, event_fields
from exporter.metrics import Metrics

log = structlog.get_logger("exporter.events")


class Recorder:
    """Records accepted events into metrics and the event log."""

    __slots__ = ("_metrics", "_recipient_mode")

    def __init__(self, metrics: Metrics, recipient_mode: RecipientMode) -> None:
        self._metrics = metrics
        self._recipient_mode = recipient_mode

    def record(self, event: Event, diagnosis: Diagnosis, received_at: float) -> None:
        self._metrics.count_event(event, diagnosis, received_at)
        log.info(event.kind.value, **event_fields(event, diagnosis, self._recipient_mode))
