"""The record step: an accepted event and its diagnosis become one log line and counters.

The log line comes first and must get out (or into the log buffer): if it cannot,
:class:`~exporter.logs.LogUnavailable` propagates, nothing has been counted, and the
request is refused so SMTPeter sends the event again. So every counted event was logged,
and a 2xx means both happened. Nothing else here can refuse: the event was validated before.
"""

from __future__ import annotations

import asyncio

from exporter.diagnosis import Diagnosis
from exporter.events import Event
from exporter.logs import RecipientMode, event_fields, log_event
from exporter.metrics import Metrics


class Recorder:
    """Records accepted events into the event log, then into metrics."""

    __slots__ = ("_metrics", "_recipient_mode")

    def __init__(self, metrics: Metrics, recipient_mode: RecipientMode) -> None:
        self._metrics = metrics
        self._recipient_mode = recipient_mode

    def record(
        self, event: Event, diagnosis: Diagnosis, received_at: float
    ) -> asyncio.Future[None] | None:
        """Log, then count; raises :class:`~exporter.logs.LogUnavailable` having done neither.

        The line may wait for the end of this turn of the event loop, to be written with the
        others of the turn: then the future returned resolves once it is written and the
        event counted (or raises :class:`~exporter.logs.LogUnavailable`, neither done).
        Nobody awaiting it changes nothing: the event is recorded all the same.
        """
        fields = event_fields(event, diagnosis, self._recipient_mode)
        return log_event(
            event.kind.value,
            fields,
            lambda: self._metrics.count_event(event, diagnosis, received_at),
        )
