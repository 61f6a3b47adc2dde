"""The classify step: what an accepted event means.

A failure gets a :class:`~exporter.mail.Verdict` (reason, hard or soft) from its
state, codes and text; a bounce or abuse report gets its raw message read into a
:class:`~exporter.mail.BounceReport`. Metrics and logs record the event and this
diagnosis together; nothing here rejects, since the event is already accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, assert_never

import structlog

from exporter.events import (
    AbuseEvent,
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    Event,
    FailureEvent,
    OpenEvent,
)
from exporter.mail import BounceReport, Verdict, classify_failure, read_bounce
from exporter.mail.bounces import MAX_EXCERPT

log = structlog.get_logger("exporter.diagnosis")

#: ARF feedback types (RFC 5965 section 7.3, RFC 6591 for auth-failure) used as label values;
#: anything else a report says, or a report that says none, is ``other``.
FEEDBACK_TYPES: Final = ("abuse", "auth-failure", "fraud", "not-spam", "other", "virus")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why a failure failed, or what a bounce or complaint message says; empty otherwise."""

    verdict: Verdict | None = None
    report: BounceReport | None = None

    @property
    def feedback_type(self) -> str:
        """The complaint's feedback type as a label value (``other`` when not ARF)."""
        given = self.report.feedback_type.lower() if self.report is not None else ""
        return given if given in FEEDBACK_TYPES else "other"


NOTHING: Final = Diagnosis()


def diagnose(event: Event) -> Diagnosis:
    """A failure's verdict, or what a bounce or complaint message says; nothing for the rest."""
    match event:
        case FailureEvent():
            verdict = classify_failure(
                event.state, event.code, event.extended, event.description, domain=event.domain
            )
            return Diagnosis(verdict=verdict)
        case BounceEvent() | AbuseEvent():
            return Diagnosis(report=_read_message(event.mime))
        case DeliveryEvent() | OpenEvent() | ClickEvent():
            return NOTHING
        case _:
            assert_never(event)


def _read_message(mime: bytes) -> BounceReport:
    """The bounce reader's report; a bug in it makes the message unrecognized, not a 500.

    A 5xx would make SMTPeter send the same message again and again, while the event
    itself is valid and worth counting; the exception is logged for a bug report.
    """
    try:
        return read_bounce(mime)
    except Exception:
        log.exception("bounce_reader_failed", size=len(mime))
        return BounceReport("unrecognized", (), excerpt=mime[:MAX_EXCERPT].decode("latin-1"))
