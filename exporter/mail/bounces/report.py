"""What the bounce reader reports: one classified fact per failed recipient, per message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.mail.vocabulary import BounceType, Reason

BOUNCE_KINDS: Final = ("dsn", "autoreply", "feedback", "unrecognized")


@dataclass(frozen=True, slots=True)
class BounceFact:
    """What a bounce says about one recipient, in the vocabulary of a failures webhook."""

    #: The failed recipient address, domain lowercased, without angle brackets.
    recipient: str
    #: RFC 3463 enhanced status ("5.1.1"), or "" when the message gives none of its own.
    status: str
    #: SMTP reply code ("550"), or "".
    code: str
    #: SMTP stage as :func:`exporter.mail.smtp.normalize_state` names it, or "".
    state: str
    #: The diagnostic text, whitespace folded, at most :data:`MAX_DESCRIPTION` characters.
    description: str
    #: From :func:`exporter.mail.classifier.classify_failure`.
    reason: Reason
    bounce_type: BounceType


@dataclass(frozen=True, slots=True)
class BounceReport:
    """Everything one raw message says: its kind and a fact per failed recipient."""

    #: One of :data:`BOUNCE_KINDS`.
    kind: str
    #: One per failed recipient; empty when the message is unrecognized.
    facts: tuple[BounceFact, ...]
    #: ARF ``Feedback-Type`` (abuse, fraud, virus, other, not-spam, ...) for ``feedback``.
    feedback_type: str = ""
    #: Subject and start of the text, bounded, for logging a message nobody could read.
    excerpt: str = ""


#: Longest ``description`` kept: enough for a multi-line SMTP reply, bounded for log lines.
MAX_DESCRIPTION: Final = 1000

#: Longest ``excerpt`` of an unrecognized message.
MAX_EXCERPT: Final = 300

#: Bound on facts per message; real bounces name a handful of recipients.
MAX_FACTS: Final = 256


@dataclass(slots=True)
class Failure:
    """A failed recipient as a reader found it, before classification."""

    recipient: str
    diagnostic: str = ""
    #: The report's own Status field, used when the diagnostic gives none.
    status: str = ""
    #: Text near the recipient that may say which SMTP command failed.
    context: str = ""
    #: The remote server's host name (a report's Remote-MTA), when the reader found one.
    host: str = ""
