"""The record step: an accepted event and its diagnosis become one log line and counters.

The log line comes first and must get out (or into the log buffer): if it cannot,
:class:`~exporter.logs.LogUnavailable` propagates, nothing has been counted, and the
request is refused so SMTPeter sends the event again. So every counted event was logged,
and a 2xx means both happened. Nothing else here can refuse: the event was validated before.
"""

from __future__ import annotations

import structlog

from exporter.diagnosis import Diagnosis
from exporter.events import Event
from exporter.logs import EVENT_LOGGER, RecipientMode, event_fields
from exporter.metrics import Metrics


class Recorder:
    """Records accepted events into the event log, then into metrics."""

    __slots__ = ("_log", "_metrics", "_recipient_mode")

    def __init__(self, metrics: Metrics, recipient_mode: RecipientMode) -> None:
        self._metrics = metrics
        self._recipient_mode = recipient_mode
        self._log = structlog.get_logger(EVENT_LOGGER)

    def record(self, event: Event, diagnosis: Diagnosis, received_at: float) -> None:
        """Log, then count; raises :class:`~exporter.logs.LogUnavailable` having done neither."""
        self._log.info(event.kind.value, **event_fields(event, diagnosis, self._recipient_mode))
        self._metrics.count_event(event, diagnosis, received_at)
