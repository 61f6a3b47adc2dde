"""Request outcomes and the one exception every refusal is raised as.

Any step of the request path (reading the body, authenticating, decoding, parsing) raises
:class:`Rejected`; one middleware turns it into a JSON body, a counter increment and a
warning log line, so no step formats errors itself.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Outcome(StrEnum):
    """The ``outcome`` label of ``smtpeter_webhook_requests_total``."""

    #: Recorded (counted and logged), answered 200.
    ACCEPTED = "accepted"
    #: Already recorded: a retry of an event seen within the duplicate window, answered 200.
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNSUPPORTED_MEDIA = "unsupported_media"
    TOO_LARGE = "too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"
    #: The body did not arrive within the body timeout (408).
    TIMEOUT = "timeout"
    # 401: the request is not SMTPeter's.
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    DIGEST_MISMATCH = "digest_mismatch"
    STALE_DATE = "stale_date"
    REPLAYED = "replayed"
    UNKNOWN_KEY = "unknown_key"
    WRONG_ACCOUNT = "wrong_account"
    BAD_TOKEN = "bad_token"  # noqa: S105 - an outcome name, not a secret
    #: The signing key could not be looked up right now (DNS down): 503, SMTPeter retries.
    KEY_UNAVAILABLE = "key_unavailable"
    #: The event's log line could not be written (stdout's reader gone, or the log buffer
    #: full): 503, not recorded, SMTPeter retries.
    LOG_UNAVAILABLE = "log_unavailable"
    #: The client hung up before the answer: nothing was recorded, nothing answered.
    CLIENT_CLOSED = "client_closed"
    #: A bug (500); the traceback is logged.
    INTERNAL_ERROR = "internal_error"


#: The event is recorded (now or before) and the request answered 2xx.
ANSWERED_OK: Final = frozenset({Outcome.ACCEPTED, Outcome.DUPLICATE})
#: Refused because of authentication (401): the request is not SMTPeter's.
UNAUTHENTICATED: Final = frozenset(
    {
        Outcome.MISSING_SIGNATURE,
        Outcome.BAD_SIGNATURE,
        Outcome.DIGEST_MISMATCH,
        Outcome.STALE_DATE,
        Outcome.REPLAYED,
        Outcome.UNKNOWN_KEY,
        Outcome.WRONG_ACCOUNT,
        Outcome.BAD_TOKEN,
    }
)
#: Refused for what the client sent (a 4xx): what the shipped "rejected requests" alert
#: counts. Every outcome is in exactly one of ANSWERED_OK, REFUSED and UNANSWERED; a test
#: keeps it so.
REFUSED: Final = UNAUTHENTICATED | {
    Outcome.INVALID,
    Outcome.UNSUPPORTED_MEDIA,
    Outcome.TOO_LARGE,
    Outcome.METHOD_NOT_ALLOWED,
    Outcome.NOT_FOUND,
    Outcome.TIMEOUT,
}
#: Answered 503: the exporter cannot record events right now (SMTPeter retries them).
UNAVAILABLE: Final = frozenset({Outcome.KEY_UNAVAILABLE, Outcome.LOG_UNAVAILABLE})
#: Not answered with a result the client can act on: our fault (5xx) or the client's leaving.
UNANSWERED: Final = UNAVAILABLE | {Outcome.CLIENT_CLOSED, Outcome.INTERNAL_ERROR}


class Rejected(Exception):  # noqa: N818 - it is an outcome, not an error condition of ours
    """A request we refuse, with the status, the outcome label and what was wrong."""

    def __init__(
        self,
        status: int,
        outcome: Outcome,
        error: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.outcome = outcome
        self.error = error
        self.field = field
        #: Response headers the refusal needs (``WWW-Authenticate``, ``Retry-After``, ...).
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON body of the response: ``error`` always, ``field`` when one field is to blame."""
        if self.field is None:
            return {"error": self.error}
        return {"error": self.error, "field": self.field}


class CloseReason(StrEnum):
    """Why the server closed a client connection itself (the ``reason`` label)."""

    #: The request's headers did not arrive within ``--web.header-timeout``.
    HEADER_TIMEOUT = "header_timeout"
    #: A keep-alive connection stayed idle past ``--web.idle-timeout``.
    IDLE_TIMEOUT = "idle_timeout"
    #: At ``--web.max-connections``, the connection waiting longest for a request made room
    #: for a new one (a busy connection only when none was waiting).
    EVICTED = "evicted"
    #: The request could not be parsed as HTTP (answered 400 first).
    BAD_REQUEST = "bad_request"


class KeyLookup(StrEnum):
    """The ``outcome`` of a DNS lookup of SMTPeter's signing key."""

    FOUND = "found"
    #: The name exists in no usable form: no TXT record, or none holding an RSA key.
    NOT_FOUND = "not_found"
    #: The lookup failed (timeout, SERVFAIL, no answer from the server).
    ERROR = "error"


def invalid(error: str, field: str | None = None) -> Rejected:
    """A 400: the request was understood but a field is wrong or missing."""
    return Rejected(400, Outcome.INVALID, error, field)


def unauthenticated(
    outcome: Outcome, error: str, headers: dict[str, str] | None = None
) -> Rejected:
    """A 401: the request does not prove it comes from SMTPeter."""
    assert outcome in UNAUTHENTICATED, outcome
    return Rejected(401, outcome, error, headers=headers)
