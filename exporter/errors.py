"""Request outcomes and the one exception that turns into a 4xx.

Any step of the request path (body reading, parsing, and later authentication or
deduplication middleware) raises :class:`Rejected`; one middleware turns it into a JSON
body, a counter increment and a warning log line, so no step formats errors itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Outcome(StrEnum):
    """The ``outcome`` label of ``smtpeter_webhook_requests_total``."""

    ACCEPTED = "accepted"
    INVALID = "invalid"
    UNSUPPORTED_MEDIA = "unsupported_media"
    TOO_LARGE = "too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"
    INTERNAL_ERROR = "internal_error"


#: Outcomes of requests refused for what the client sent (a 4xx): what the shipped
#: "rejected requests" alert counts. Every outcome is accepted, refused, or our fault
#: (``internal_error``); a test keeps a new outcome from being none of these.
REFUSED: Final = frozenset(
    {
        Outcome.INVALID,
        Outcome.UNSUPPORTED_MEDIA,
        Outcome.TOO_LARGE,
        Outcome.METHOD_NOT_ALLOWED,
        Outcome.NOT_FOUND,
    }
)


class Rejected(Exception):  # noqa: N818 - it is an outcome, not an error condition of ours
    """A request we refuse, with the status, the outcome label and what was wrong."""

    def __init__(self, status: int, outcome: Outcome, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.outcome = outcome
        self.error = error
        self.field = field

    def body(self) -> dict[str, str]:
        """The JSON body of the response: ``error`` always, ``field`` when one field is to blame."""
        if self.field is None:
            return {"error": self.error}
        return {"error": self.error, "field": self.field}


def invalid(error: str, field: str | None = None) -> Rejected:
    """A 400: the request was understood but a field is wrong or missing."""
    return Rejected(400, Outcome.INVALID, error, field)
